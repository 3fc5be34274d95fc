"""Thread counts for shared machines: the CPUs the process may use, passive OpenMP waits, explicit wins,
a resumed run keeps its count, and one warning when a run becomes oversubscribed."""
import logging
import os
import subprocess
import sys

import pytest
import torch

from viewsplit import threads


def _py(code: str, **env: str) -> str:
    full = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return subprocess.run([sys.executable, "-c", code], env={**full, **env}, capture_output=True, text=True,
                          check=True, timeout=120).stdout.strip()


def test_openmp_threads_wait_passively_unless_the_user_chose():
    assert _py("import viewsplit, os; print(os.environ['OMP_WAIT_POLICY'])") == "PASSIVE"
    assert _py("import viewsplit, os; print(os.environ['OMP_WAIT_POLICY'])", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    # torch already loaded its OpenMP runtime: setting it now would do nothing, so viewsplit does not pretend
    assert _py("import torch, viewsplit, os; print(os.environ.get('OMP_WAIT_POLICY'))") == "None"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_default_threads_follow_the_affinity_mask():
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " \
           "from viewsplit import threads; print(threads.default_threads([(1, 8, 8)]))"
    assert _py(code) == "1"
    assert threads.usable_cpus() <= len(os.sched_getaffinity(0))


def test_cgroup_quota_caps_the_cpus(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert threads.cgroup_cpus(tmp_path) == 1.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert threads.cgroup_cpus(tmp_path) is None
    monkeypatch.setattr(threads, "cgroup_cpus", lambda root=None: 0.5)
    assert threads.usable_cpus() == 1
    assert threads.resolve(None) == 1 and threads.resolve(3) == 3   # an explicit count always wins


def test_vector_views_default_to_one_thread_images_to_the_usable_cpus(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 4)
    assert threads.default_threads([(76,), (216,)]) == 1            # small MLPs: one thread is fastest
    assert threads.default_threads([(1, 32, 32), (1, 32, 32)]) == 4  # convolutions share the CPUs
    assert threads.default_threads([(1, 32, 32), (10,)]) == 4
    assert threads.resolve(None, [(76,), (216,)]) == 1 and threads.resolve(2, [(76,)]) == 2


def test_limited_sets_torch_and_blas_pools_and_restores_them():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with threads.limited(1):
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before


def test_an_oversubscribed_run_is_reported_once(caplog, monkeypatch):
    monkeypatch.setattr(threads, "load_average", lambda: 0.0)
    watch = threads.SlowdownWatch(2, skip=2, warmup=5, factor=3.0, check_every=5)
    with caplog.at_level(logging.WARNING, logger="viewsplit"):
        for t in [1.0] * 2 + [0.01] * 5 + [0.02] * 20:   # start-up, reference, then 2x: not oversubscribed
            watch.observe(t)
        assert not caplog.records
        for _ in range(40):
            watch.observe(0.05)                            # 5x the reference
    assert len(caplog.records) == 1
    assert "oversubscribed" in caplog.text and "train.threads=1" in caplog.text and "5.0×" in caplog.text
    assert ("OMP_WAIT_POLICY" in caplog.text) != threads.passive_wait()   # spinning threads: say how to stop them
    # a load above the usable CPUs is reported too; a single-threaded run has nothing to lower
    monkeypatch.setattr(threads, "load_average", lambda: 10.0 * threads.usable_cpus())
    busy = threads.SlowdownWatch(2, skip=0, warmup=2, check_every=2)
    one = threads.SlowdownWatch(1, skip=0, warmup=2, check_every=2)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="viewsplit"):
        for _ in range(10):
            busy.observe(0.01)
            one.observe(0.01)
    assert len(caplog.records) == 1 and "load average" in caplog.text


def test_training_uses_the_default_and_a_resumed_run_keeps_its_count(tmp_path, monkeypatch):
    from helpers import train_killed_at

    from viewsplit.config import load_config
    from viewsplit.engine.run import train

    over = ["method=autoencoder", "data.name=synthetic", "data.n_samples=200", "stages.train.epochs=3",
            "stages.train.batch_size=40", "train.progress=never", "eval.figures=false"]
    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    monkeypatch.setattr("viewsplit.engine.trainer.default_threads", lambda shapes: 1)
    train(load_config(None, over), tmp_path / "a")
    assert seen[0] == 1
    # killed in its second epoch while training with an explicit 2 threads, then resumed with the default:
    # it keeps the 2 threads it trained with (another count would change the sums), and is not refused
    train_killed_at(monkeypatch, train, load_config(None, [*over, "train.threads=2"]), tmp_path / "b", 6)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    seen.clear()
    train(load_config(None, over), tmp_path / "b", resume=True)
    assert seen[0] == 2

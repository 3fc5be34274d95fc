"""The on-disk folder format: convert round trips, clear errors, prefetch, sharding, streamed = in-memory training."""
import threading

import numpy as np
import pytest
import torch
from helpers import assert_same_batches

from viewsplit.cli import main
from viewsplit.data import DataConfig, DataError, load_dataset, ondisk
from viewsplit.data.ondisk import OnDiskDataset, open_folder, prefetch


def _arrays(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return {"view0": rng.integers(0, 256, (n, 1, 6, 6)).astype(np.uint8),
            "view1": rng.normal(size=(n, 5)).astype(np.float32),
            "view2": rng.normal(size=(n, 3)).astype(np.float16),
            "labels": rng.integers(0, 3, n),
            "factors_shared": rng.normal(size=(n, 2)),
            "factors_view1": rng.normal(size=n)}


def _folder(tmp_path, arrays, name="f"):
    out = tmp_path / name
    out.mkdir()
    for k, v in arrays.items():
        np.save(out / f"{k}.npy", v)
    return out


def _same_batches(a, b, **kw):
    assert_same_batches(a, b, 32, **kw)


def test_npz_round_trip_in_memory_and_streamed(tmp_path):
    arrays = _arrays()
    arrays["train_index"], arrays["test_index"] = np.arange(200), np.arange(200, 300)
    np.savez_compressed(tmp_path / "d.npz", **arrays)
    assert main(["convert", "--npz", str(tmp_path / "d.npz"), "--out", str(tmp_path / "f"), "--chunk", "64"]) == 0
    for k, v in arrays.items():   # byte-exact, dtypes kept (uint8 images, float16) or documented (factors → float32)
        got = np.load(tmp_path / "f" / f"{k}.npy")
        assert np.array_equal(got, v.astype(got.dtype)) and (got.dtype == v.dtype or k.startswith("factors"))
    mem = load_dataset(DataConfig(name="folder", path=str(tmp_path / "f"), stream=False))
    disk = load_dataset(DataConfig(name="folder", path=str(tmp_path / "f"), stream=True))
    assert isinstance(disk.train, OnDiskDataset) and not isinstance(mem.train, OnDiskDataset)
    assert disk.info["storage"] == "memory-mapped, streamed" and mem.info["storage"] == "read into memory"
    for split in ("train", "test"):
        a, b = getattr(mem, split), getattr(disk, split)
        _same_batches(a, b)
        assert a.view_shapes == b.view_shapes == [(1, 6, 6), (5,), (3,)]
        rows = slice(0, 200) if split == "train" else slice(200, 300)
        assert np.array_equal(a.factors["view1"][:, 0], arrays["factors_view1"][rows].astype(np.float32))
        assert np.array_equal(b.factors["shared"], a.factors["shared"])
    # float16 is batched as float32, uint8 as float32 in [0, 1]
    batch = disk.train.batch(torch.arange(4))
    assert batch.views[0].dtype == batch.views[2].dtype == torch.float32
    assert torch.equal(batch.views[0], torch.from_numpy(arrays["view0"][:4]).float() / 255)


def test_streamed_batches_and_ddp_shards_equal_in_memory(tmp_path, monkeypatch):
    path = _folder(tmp_path, _arrays(301))
    cfg = dict(name="folder", path=str(path), missing_rate=0.3, train_limit=150)
    mem, disk = load_dataset(DataConfig(**cfg, stream=False)), load_dataset(DataConfig(**cfg, stream=True))
    monkeypatch.setattr(ondisk, "RELEASE_BYTES", 1)   # release the mapped pages after every batch: data unchanged
    for rank in (0, 1):
        _same_batches(mem.train, disk.train, shuffle=True, seed=5, epoch=2, rank=rank, world_size=2, drop_last=True)
    _same_batches(mem.test, disk.test)
    seen = torch.cat([b.index for r in (0, 1) for b in disk.train.batches(32, shuffle=True, world_size=2, rank=r)])
    assert set(seen.tolist()) == set(range(150))      # the shards cover the split (with DistributedSampler padding)


def test_auto_streams_only_above_the_threshold(tmp_path):
    path = _folder(tmp_path, _arrays())
    assert not isinstance(load_dataset(DataConfig(name="folder", path=str(path))).train, OnDiskDataset)
    small = DataConfig(name="folder", path=str(path), stream_above_mb=0)
    assert isinstance(load_dataset(small).train, OnDiskDataset)


def test_csv_and_builtin_conversions(tmp_path):
    rng = np.random.default_rng(1)
    a, b, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2)), rng.integers(0, 2, 50)
    np.savetxt(tmp_path / "a.csv", a, delimiter=",", header="x,y,z", comments="")
    np.savetxt(tmp_path / "b.csv", b, delimiter=",")
    np.savetxt(tmp_path / "y.csv", y, delimiter=",", fmt="%d")
    assert main(["convert", "--csv", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--labels",
                 str(tmp_path / "y.csv"), "--out", str(tmp_path / "c"), "--chunk", "7"]) == 0
    assert np.allclose(np.load(tmp_path / "c" / "view0.npy"), a, atol=1e-6)
    assert np.array_equal(np.load(tmp_path / "c" / "labels.npy"), y)
    assert main(["convert", "--dataset", "synthetic", "data.n_samples=120", "--out", str(tmp_path / "s")]) == 0
    ref = load_dataset(DataConfig(name="synthetic", n_samples=120))
    got = load_dataset(DataConfig(name="folder", path=str(tmp_path / "s")))
    assert len(got.train) == len(ref.train) and torch.equal(got.test.views[1], ref.test.views[1])
    assert main(["convert", "--dataset", "synthetic", "--out", str(tmp_path / "s")]) == 2   # never overwrites


def _bad(tmp_path, edit):
    arrays = _arrays(20)
    edit(arrays)
    return _folder(tmp_path, arrays)


@pytest.mark.parametrize("edit, match", [
    (lambda a: a.pop("view1"), r"without gaps.*view0.npy', 'view2.npy"),
    (lambda a: a.update(view1=a["view1"][:19]), r"view1.npy: has 19 samples but view0.npy has 20"),
    (lambda a: a.update(view1=a["view1"].astype(np.float64)), r"view1.npy: dtype must be uint8, float16 or float32"),
    (lambda a: a.update(view1=a["view1"][:, 0]), r"view1.npy: expected a non-empty \(N, D\)"),
    (lambda a: a.update(labels=np.zeros(20)), r"labels.npy: labels must have dtype kind"),
    (lambda a: a.update(labels=a["labels"][:5]), r"labels.npy: expected shape \(20,\)"),
    (lambda a: a.update(mask=np.zeros((20, 3), bool)), r"mask.npy: rows with no view present"),
    (lambda a: a.update(train_index=np.arange(5)), r"both train_index.npy and test_index.npy"),
    (lambda a: a.update(test_index=np.array([3, 99]), train_index=np.arange(3)), r"test_index.npy: .*\[0, 20\)"),
    (lambda a: a.update(factors_view7=np.zeros(20)), r"unknown arrays \['factors_view7.npy'\]"),
    (lambda a: a.update(factors_shared=np.zeros(19)), r"factors_shared.npy: factors must be"),
])
def test_bad_folders_name_the_file(tmp_path, edit, match):
    with pytest.raises(DataError, match=match):
        open_folder(_bad(tmp_path, edit))


def test_ragged_truncated_and_nonfinite_arrays(tmp_path):
    path = _folder(tmp_path, _arrays(20))
    np.save(path / "view1.npy", np.array([np.zeros(2), np.zeros(3)], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"view1.npy: an object \(ragged\) array"):
        open_folder(path)
    raw = (path / "view0.npy").read_bytes()
    np.save(path / "view1.npy", np.zeros((20, 5), np.float32))
    (path / "view0.npy").write_bytes(raw[:-10])
    with pytest.raises(DataError, match=r"view0.npy: not a readable .npy array"):
        open_folder(path)
    (path / "view0.npy").write_bytes(raw)
    bad = np.zeros((20, 5), np.float32)
    bad[7, 1] = np.nan
    np.save(path / "view1.npy", bad)
    ds = load_dataset(DataConfig(name="folder", path=str(path), stream=True, test_fraction=0.5))
    with pytest.raises(DataError, match=r"view1.npy: contains NaN or Inf values \(rows \[7\]\)"):
        list(load_dataset(DataConfig(name="folder", path=str(path), stream=True)).train.batches(64))
    with pytest.raises(DataError, match=r"NaN or Inf"):   # the in-memory path checks it on loading
        load_dataset(DataConfig(name="folder", path=str(path), stream=False))
    assert len(ds.train) + len(ds.test) == 20   # loading a streamed folder reads no view data


def test_prefetch_keeps_order_raises_and_stops():
    assert list(prefetch(iter(range(50)), 3)) == list(range(50))

    def failing():
        yield 1
        raise DataError("boom")

    it = prefetch(failing(), 2)
    assert next(it) == 1
    with pytest.raises(DataError, match="boom"):
        next(it)
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    it = prefetch(endless(), 2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()                                          # the consumer stops early: the producer thread ends
    assert threading.active_count() == before and len(produced) <= 3 + 2 + 1


def test_training_from_disk_equals_training_in_memory(tmp_path):
    from viewsplit.config import load_config
    from viewsplit.engine.run import train

    arrays = _arrays(200)
    path = _folder(tmp_path, {"view0": arrays["view1"], "view1": arrays["view2"], "labels": arrays["labels"]}, "d")
    raw = {"method": "autoencoder", "data": {"name": "folder", "path": str(path)},
           "model": {"code_dim": 3, "backbone": {"hidden": [16], "norm": False}},
           "stages": {"train": {"epochs": 2, "batch_size": 32}}, "train": {"threads": 1, "progress": "never"}}
    states = [train(load_config(base=raw, overrides=[f"data.stream={s}"]), tmp_path / s).method.state_dict()
              for s in ("false", "true")]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_two_process_ddp_over_the_streamed_folder_equals_one_process(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    import yaml
    from conftest import REPO

    from viewsplit.config import load_config
    from viewsplit.engine.run import load_run, train

    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun not found")
    arrays = _arrays(200)     # a uint8 image view (scaled to [0, 1], then standardised per channel), float32, float16
    path = _folder(tmp_path, {k: arrays[k] for k in ("view0", "view1", "view2", "labels")}, "d")
    # no BatchNorm anywhere (conv_norm too): under DDP it normalises with each rank's shard statistics, which
    # a single process on the global batch cannot reproduce; that, not the uint8 view, made such runs differ
    raw = {"method": "autoencoder", "data": {"name": "folder", "path": str(path), "stream": True, "standardize": "all"},
           "model": {"code_dim": 3,
                     "backbone": {"hidden": [16], "norm": False, "channels": [4, 4], "conv_norm": "none"}},
           "stages": {"train": {"epochs": 2, "batch_size": 32, "grad_clip": 1.0}},
           "train": {"threads": 1, "progress": "never"}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port=29523", "-m", "viewsplit", "train",
                           str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "ddp")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reducer" not in proc.stderr and "Warning:" not in proc.stderr, proc.stderr[-3000:]   # ours or torch's
    single = train(load_config(tmp_path / "cfg.yaml", ["data.stream=false"]), tmp_path / "one").method.state_dict()
    ddp = load_run(tmp_path / "ddp").method.state_dict()
    assert all(torch.allclose(single[k].float(), ddp[k].float(), atol=1e-5) for k in single)


def test_the_evaluation_cap_reads_the_same_rows_from_disk(tmp_path):
    """eval.max_samples on a streamed folder subsamples the mapped views (no read of the whole split) and gives
    the same batches as on the folder read into memory."""
    from viewsplit.eval.evaluate import cap_splits

    folder = _folder(tmp_path, _arrays())
    mem = load_dataset(DataConfig(name="folder", path=str(folder), stream=False))
    disk = load_dataset(DataConfig(name="folder", path=str(folder), stream=True))
    (a, rec_a), (b, rec_b) = cap_splits(mem, 50), cap_splits(disk, 50)
    assert isinstance(b.train, OnDiskDataset) and isinstance(b.test, OnDiskDataset) and rec_a == rec_b
    for split in ("train", "test"):
        assert len(getattr(b, split)) == 50
        _same_batches(getattr(a, split), getattr(b, split))


def test_a_rank_reads_only_its_shard(tmp_path, monkeypatch):
    disk = load_dataset(DataConfig(name="folder", path=str(_folder(tmp_path, _arrays(101))), stream=True))
    read: list[int] = []
    original = ondisk.MappedView.__getitem__

    def spy(self, index):
        if self.path.name == "view0.npy":
            pos = np.asarray(index, dtype=np.int64).reshape(-1)
            read.extend((pos if self.rows is None else self.rows[pos]).tolist())
        return original(self, index)

    monkeypatch.setattr(ondisk.MappedView, "__getitem__", spy)
    shards = []
    for rank in (0, 1):
        read.clear()
        index = torch.cat([b.index for b in disk.train.batches(16, shuffle=True, seed=3, rank=rank, world_size=2)])
        rows = disk.train.views[0].rows[index.numpy()]            # the file rows of this rank's samples
        assert sorted(read) == sorted(rows.tolist())              # read exactly those, each once
        shards.append(set(rows.tolist()))
    assert len(shards[0] & shards[1]) <= 1                        # disjoint but for DistributedSampler's padding

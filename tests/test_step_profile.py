"""benchmarks/step_profile.py: its phases account for a step's wall time, and its FLOP count is exact."""
from __future__ import annotations

import pytest
import torch
from conftest import REPO
from helpers import import_benchmark

from viewsplit.config import load_config

sp = import_benchmark("step_profile")


def test_linear_flops_are_exact() -> None:
    """2·B·I·O per matrix product: forward, weight gradient, and the input gradient when the input needs one."""
    layer = torch.nn.Linear(32, 16)
    x = torch.randn(8, 32)
    assert sp.count_flops(lambda: layer(x).sum().backward()) == 2 * (2 * 8 * 32 * 16)
    x.requires_grad_(True)
    assert sp.count_flops(lambda: layer(x).sum().backward()) == 3 * (2 * 8 * 32 * 16)


def test_phases_add_up_to_the_wall_time(tmp_path) -> None:
    """Both stages of a tiny MRDD: every phase is measured, none exceeds the step, and the steps' walls
    cover the timed loop; the table has one cell per column."""
    torch.set_num_threads(1)   # tiny ops: a second thread only adds wake-ups (conftest resets the count per test)
    cfg = load_config(REPO / "configs" / "edge_fmnist" / "mrdd.yaml", [
        "model.v_dim=8", "model.consistency.channels=[4,8]", "model.specific.channels=[4,8]",
        "model.club_hidden=8", "stages.consistency.batch_size=16", "stages.disentangle.batch_size=16"])
    data = sp.random_data([(1, 32, 32), (1, 32, 32)], 48)
    trainer = sp.make_trainer(cfg, data, tmp_path)
    rows = [sp.profile_stage(trainer, name, steps=3, warmup=1) for name in ("consistency", "disentangle")]
    for r in rows:
        ph = r["phases"]
        assert all(ph[k] > 0 for k in ("data", "forward", "backward", "optimiser")), r
        assert ph["overhead"] >= 0 and sum(ph.values()) == pytest.approx(r["wall"])
        assert 3 * r["wall"] == pytest.approx(r["elapsed"], rel=0.05, abs=2e-3)
        assert r["flops"] > 0 and not list(tmp_path.iterdir())
    lines = sp.table(rows, 10.0, 20.0).splitlines()
    assert len(lines) == 4 and len({line.count("|") for line in lines}) == 1


def test_peaks_are_measured() -> None:
    assert 0 < sp.peak_matmul(n=64, repeats=1) < 1e6
    assert 0 < sp.peak_conv(batch=2, channels=4, size=8, repeats=1) < 1e6

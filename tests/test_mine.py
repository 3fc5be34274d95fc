"""MINE redundancy estimates against docs/evaluation.md#mine known answers."""
import math

import numpy as np
import pytest
import torch

from viewsplit.eval.mine import dv_bound, mine_estimate, mine_runs


def test_constant_critic_gives_zero():
    c, v = torch.randn(64, 3), torch.randn(64, 2)
    def critic(z: torch.Tensor) -> torch.Tensor:
        return torch.full((z.shape[0], 1), 3.7)

    assert dv_bound(critic, c, v, torch.randperm(64)).item() == pytest.approx(0.0, abs=1e-6)


def _pair(rho, n=5000, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n, 1))
    return c, rho * c + math.sqrt(1 - rho**2) * rng.normal(size=(n, 1))


@pytest.mark.slow
def test_correlated_gaussians_known_answer():
    torch.set_num_threads(1)
    c, v = _pair(0.8)
    est = mine_estimate(c, v, epochs=100)
    assert -0.5 * math.log(1 - 0.64) == pytest.approx(0.510826, abs=1e-6)
    assert 0.40 <= est <= 0.56


@pytest.mark.slow
def test_independent_gaussians_near_zero():
    torch.set_num_threads(1)
    c, v = _pair(0.0)
    assert abs(mine_estimate(c, v, epochs=100)) < 0.05


def test_runs_report_mean_and_std():
    c, v = _pair(0.8, n=512)
    r = mine_runs(c, v, runs=2, epochs=2)
    assert set(r) == {"mean", "std", "per_run"} and len(r["per_run"]) == 2
    assert mine_estimate(c, v, epochs=2, seed=1) == r["per_run"][1]      # seeded, hence reproducible

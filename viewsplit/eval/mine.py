"""MINE estimate of I(C; V_v), the redundancy between consistent and specific codes (protocols.md §8).

Critic T(c, v) = Linear(d_c+d_v, 100)–ReLU–Linear(100, 100)–ReLU–Linear(100, 100)–ReLU–Linear(100, 1),
trained (Adam, lr 1e-4, batch 128) to maximise the Donsker–Varadhan bound on each batch of B pairs

    Î = mean_b T(c_b, v_b) − [logsumexp_b T(c_b, v_π(b)) − log B],   π a fresh random permutation.

Inputs are z-scored per dimension on the evaluated data (MI is invariant to that).  The final
estimate is Î on the full set averaged over 10 permutations; several seeded runs give mean ± std.
Result in nats.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn


def mine_critic(in_dim: int, hidden: int = 100) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def dv_bound(critic: nn.Module, c: Tensor, v: Tensor, perm: Tensor) -> Tensor:
    """The Donsker–Varadhan lower bound on a batch, with negatives ``v[perm]``."""
    joint = critic(torch.cat([c, v], 1)).squeeze(1)
    marginal = critic(torch.cat([c, v[perm]], 1)).squeeze(1)
    return joint.mean() - (torch.logsumexp(marginal, 0) - math.log(c.shape[0]))


def _zscore(x: np.ndarray) -> Tensor:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    sd = x.std(0)
    return torch.from_numpy(((x - x.mean(0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32))


def mine_estimate(c: np.ndarray, v: np.ndarray, epochs: int = 100, batch_size: int = 128, lr: float = 1e-4,
                  seed: int = 0, n_perm: int = 10) -> float:
    """One MINE run: train the critic for ``epochs`` passes over the pairs, return Î on the full set."""
    g = torch.Generator().manual_seed(seed)
    ct, vt = _zscore(c), _zscore(v)
    n = ct.shape[0]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        critic = mine_critic(ct.shape[1] + vt.shape[1])
    opt = torch.optim.Adam(critic.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for i in range(0, n - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            loss = -dv_bound(critic, ct[idx], vt[idx], torch.randperm(batch_size, generator=g))
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return float(np.mean([dv_bound(critic, ct, vt, torch.randperm(n, generator=g)).item() for _ in range(n_perm)]))


def mine_runs(c: np.ndarray, v: np.ndarray, runs: int = 10, **kw) -> dict:
    """``runs`` seeded MINE estimates (seeds 0 … runs−1): mean, population std and per-run values."""
    vals = [mine_estimate(c, v, seed=s, **kw) for s in range(runs)]
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_run": vals}

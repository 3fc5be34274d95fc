"""MINE estimate of I(C; V_v), the redundancy between consistent and specific codes
(docs/evaluation.md, "MINE").

Critic T(c, v) = Linear(d_c+d_v, 100)–ReLU–Linear(100, 100)–ReLU–Linear(100, 100)–ReLU–Linear(100, 1),
trained (Adam, lr 1e-4, batch 128) to maximise the Donsker–Varadhan bound on each batch of B pairs

    Î = mean_b T(c_b, v_b) − [logsumexp_b T(c_b, v_π(b)) − log B],   π a fresh random permutation.

Inputs are z-scored per dimension with the training pairs' statistics (MI is invariant to that).
The final estimate is Î on the full set averaged over 10 permutations; several seeded runs give
mean ± std.  Result in nats.  With ``held_out`` pairs the critic is trained on the given pairs and
Î is evaluated on the held-out ones (docs/evaluation.md, "Redundancy of C in V_v"): fitted and scored on
the same pairs, the bound reports the critic's fit as much as the information.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..engine.logger import Countdown


def mine_critic(in_dim: int, hidden: int = 100) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def dv_bound(critic: nn.Module, c: Tensor, v: Tensor, perm: Tensor) -> Tensor:
    """The Donsker–Varadhan lower bound on a batch, with negatives ``v[perm]``."""
    joint = critic(torch.cat([c, v], 1)).squeeze(1)
    marginal = critic(torch.cat([c, v[perm]], 1)).squeeze(1)
    return joint.mean() - (torch.logsumexp(marginal, 0) - math.log(c.shape[0]))


def _zscore(x: np.ndarray, ref: np.ndarray | None = None) -> Tensor:
    """x z-scored per dimension with the statistics of ``ref`` (default: of x itself)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    ref = x if ref is None else np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    sd = ref.std(0)
    return torch.from_numpy(((x - ref.mean(0)) / np.where(sd > 0, sd, 1.0)).astype(np.float32))


def mine_estimate(c: np.ndarray, v: np.ndarray, epochs: int = 100, batch_size: int = 128, lr: float = 1e-4,
                  seed: int = 0, n_perm: int = 10, held_out: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """One MINE run: train the critic for ``epochs`` passes over the pairs, return Î on the full set
    (or on the ``held_out`` pairs (c, v))."""
    g = torch.Generator().manual_seed(seed)
    ct, vt = _zscore(c), _zscore(v)
    if held_out is not None:
        et, ev = _zscore(held_out[0], c), _zscore(held_out[1], v)
    else:
        et, ev = ct, vt
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
        m = et.shape[0]
        return float(np.mean([dv_bound(critic, et, ev, torch.randperm(m, generator=g)).item() for _ in range(n_perm)]))


def mine_runs(c: np.ndarray, v: np.ndarray, runs: int = 10, progress: Countdown | None = None, label: str = "",
              **kw: Any) -> dict:
    """``runs`` seeded MINE estimates (seeds 0 … runs−1): mean, population std and per-run values.

    ``progress`` logs a line (named by ``label``) as each run starts."""
    vals = []
    for s in range(runs):
        if progress is not None:
            progress.start(f"{label} run {s + 1}/{runs}".strip())
        vals.append(mine_estimate(c, v, seed=s, **kw))
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_run": vals}

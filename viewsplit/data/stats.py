"""Per-view statistics computed by streaming over batches, so they need no more memory than a batch.

Works alike for in-memory and memory-mapped (:mod:`viewsplit.data.ondisk`) data sets: both yield
float32 batches (uint8 scaled to [0, 1]).
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..errors import DataError, DataWarning
from .multiview import MultiViewDataset


def view_moments(ds: MultiViewDataset, batch_size: int = 4096) -> list[tuple[Tensor, Tensor]]:
    """Per view, the mean and population standard deviation of every feature over all samples.

    Batches are merged with Chan et al.'s pairwise update (mean and M2 = Σ (x − mean)², float64):
    M2 = M2_a + M2_b + δ² n_a n_b / n for δ = mean_b − mean_a; std = sqrt(M2 / n).
    """
    n = 0
    mean: list[Tensor] = []
    m2: list[Tensor] = []
    for batch in ds.batches(batch_size):
        nb = len(batch)
        for v, x in enumerate(batch.views):
            x = x.double()
            mb = x.mean(0)
            m2b = (x - mb).pow(2).sum(0)
            if n == 0:
                mean.append(mb)
                m2.append(m2b)
            else:
                delta = mb - mean[v]
                mean[v] = mean[v] + delta * (nb / (n + nb))
                m2[v] = m2[v] + m2b + delta.pow(2) * (n * nb / (n + nb))
        n += nb
    return [(mu, (s / n).sqrt()) for mu, s in zip(mean, m2)]


def check_trainable(ds: MultiViewDataset, batch_size: int = 4096) -> None:
    """Before training on ``ds``: refuse a view that the mask marks missing for every sample (its encoder would
    never see data), and warn of a view whose present samples are all the same (it carries no information).
    Each message names the view; one pass over the data (batch by batch, so memory-mapped views work too)."""
    assert ds.mask is not None   # validate() sets it
    names = list(ds.view_names or [f"view{v}" for v in range(ds.n_views)])
    for v in range(ds.n_views):
        if not bool(ds.mask[:, v].any()):
            raise DataError(f"data set {ds.name!r}, view {v} ({names[v]!r}): missing (mask false) in every one of "
                            f"the {len(ds)} training samples, so its encoder cannot be trained; give training "
                            "samples that have this view, or leave the view out")
    lo: dict[int, Tensor] = {}
    hi: dict[int, Tensor] = {}
    for batch in ds.batches(batch_size):
        for v, x in enumerate(batch.views):
            x = x[batch.mask[:, v]]
            if len(x):
                a, b = x.amin(0), x.amax(0)
                lo[v] = torch.minimum(lo[v], a) if v in lo else a
                hi[v] = torch.maximum(hi[v], b) if v in hi else b
    for v in lo:
        if bool(torch.equal(lo[v], hi[v])):
            warnings.warn(f"data set {ds.name!r}, view {v} ({names[v]!r}): every present training sample holds the "
                          "same values (zero variance), so this view carries no information", DataWarning,
                          stacklevel=2)

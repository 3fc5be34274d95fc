"""Per-view statistics computed by streaming over batches, so they need no more memory than a batch.

Works alike for in-memory and memory-mapped (:mod:`viewsplit.data.ondisk`) data sets: both yield
float32 batches (uint8 scaled to [0, 1]).
"""
from __future__ import annotations

from torch import Tensor

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

"""Deep CCA correlation loss (Andrew, Arora, Bilmes, Livescu, ICML 2013; docs/methods.md#dcca).

For two views' outputs H_1 (m × k_1), H_2 (m × k_2)::

    H̄_v = H_v − mean_rows(H_v)
    S11 = H̄_1ᵀH̄_1/(m − 1) + r I,   S22 = H̄_2ᵀH̄_2/(m − 1) + r I,   S12 = H̄_1ᵀH̄_2/(m − 1)
    T   = S11^{-1/2} S12 S22^{-1/2}
    corr = Σ_{i ≤ K} σ_i(T)   ("trace", Andrew-style)   or   Σ_{i ≤ K} σ_i(T)²  ("squared", cca_zoo HEAD)
    L   = −corr

Deviation from cca_zoo and the MATLAB objective, on purpose: T is whitened with Cholesky factors
instead of eigh-based inverse square roots, T' = L_1⁻¹ S12 L_2⁻ᵀ (S_vv = L_v L_vᵀ) by triangular
solves.  T' = Q_1 T Q_2ᵀ with Q_v orthogonal, so its singular values, and the loss, are the same;
but the gradient stays finite when S_vv has repeated eigenvalues, where eigh's gives NaN.  The
covariances and decompositions run in float64, and a batch with m ≤ k raises
:class:`BatchTooSmallError` instead of returning NaN or a silently ridge-dominated value (cca_zoo
#39, #188).  ``squared`` without ``top_k`` is ‖T'‖²_F and needs no SVD.

V > 2 views (viewsplit extension): the mean (``pairs="mean"``, default) or sum over all view
pairs of the two-view loss.

DDP: with ``gather_distributed=True`` (default) every view is gathered from all ranks with the
autograd-aware :func:`~viewsplit.distributed.gather`, so the covariances are the global
batch's and every rank computes the same loss; after the engine averages the gradients over the
ranks (as DDP does) they equal a single process on the whole batch.  With ``False`` each rank uses its own shard.
"""
from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ..distributed import gather
from ..errors import ConfigError
from .sdl import gram

VARIANTS = ("trace", "squared")


class BatchTooSmallError(ConfigError):
    """DCCA's batch has no more samples than output dimensions, so its covariances are singular."""


def dcca_correlation(h1: Tensor, h2: Tensor, eps: float = 1e-5, variant: str = "trace",
                     top_k: int | None = None) -> Tensor:
    """Total canonical correlation of one (already global) batch, in float64 (formula above)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if h1.dim() != 2 or h2.dim() != 2 or h1.shape[0] != h2.shape[0]:
        raise ValueError(f"DCCA expects two (m, k) batches of equal m, got {tuple(h1.shape)} and {tuple(h2.shape)}")
    m, k = h1.shape[0], max(h1.shape[1], h2.shape[1])
    if m <= k:
        raise BatchTooSmallError(
            f"DCCA needs more samples than output dimensions: batch m = {m} <= k = {k}. The covariances "
            "would be singular; raise the batch size (stages.<stage>.batch_size, the global batch under DDP) "
            "or lower the output dimension (model.out_dim).")
    with torch.autocast(h1.device.type, enabled=False):
        a = h1.double() - h1.double().mean(0, keepdim=True)
        b = h2.double() - h2.double().mean(0, keepdim=True)
        s11 = gram(a) / (m - 1) + eps * torch.eye(a.shape[1], dtype=a.dtype, device=a.device)
        s22 = gram(b) / (m - 1) + eps * torch.eye(b.shape[1], dtype=b.dtype, device=b.device)
        s12 = a.T @ b / (m - 1)
        l1, info1 = torch.linalg.cholesky_ex(s11)
        l2, info2 = torch.linalg.cholesky_ex(s22)
        if int(info1) or int(info2):
            raise ValueError("DCCA: a view's covariance is not positive definite (constant or collinear outputs); "
                             "raise eps (model.eps)")
        x = torch.linalg.solve_triangular(l1, s12, upper=False)                 # L1⁻¹ S12
        t = torch.linalg.solve_triangular(l2, x.T, upper=False).T               # L1⁻¹ S12 L2⁻ᵀ
        if variant == "squared" and top_k is None:
            return t.pow(2).sum()
        sv = torch.linalg.svdvals(t)
        if top_k is not None:
            sv = sv[:top_k]
        return sv.sum() if variant == "trace" else sv.pow(2).sum()


class DCCALoss(nn.Module):
    """L = −corr(H_1, H_2) (module docstring); more views: mean or sum over view pairs.

    Args:
        eps: the ridge r added to S11 and S22 (cca_zoo HEAD's objective default 1e-5).
        variant: ``"trace"`` (Σ σ_i, default) or ``"squared"`` (Σ σ_i²).
        top_k: use only the K largest singular values; ``None`` = all.
        pairs: ``"mean"`` or ``"sum"`` over view pairs when more than two views are given.
        gather_distributed: use the global batch under DDP (module docstring).

    ``forward(*hs, mask=None)`` takes V ≥ 2 tensors (m, k_v) and returns a scalar in their dtype
    (0 without gradient when every pair was skipped for missing views).
    """

    def __init__(self, eps: float = 1e-5, variant: str = "trace", top_k: int | None = None, pairs: str = "mean",
                 gather_distributed: bool = True):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if pairs not in ("mean", "sum"):
            raise ValueError(f"pairs must be 'mean' or 'sum', got {pairs!r}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        self.eps, self.variant, self.top_k, self.pairs = eps, variant, top_k, pairs
        self.gather_distributed = gather_distributed

    def extra_repr(self) -> str:
        return (f"eps={self.eps}, variant={self.variant!r}, top_k={self.top_k}, pairs={self.pairs!r}, "
                f"gather_distributed={self.gather_distributed}")

    def correlation(self, h1: Tensor, h2: Tensor) -> Tensor:
        """corr of a batch that is already global (no gathering here), float64."""
        return dcca_correlation(h1, h2, self.eps, self.variant, self.top_k)

    def forward(self, *hs: Tensor, mask: Tensor | None = None) -> Tensor:
        """−corr, pooled over view pairs.  ``mask`` (m, V) bool marks present views: a pair uses the
        samples where both are present, and an incomplete pair with ≤ k such samples in the
        (global) batch is skipped; a complete batch with m ≤ k raises :class:`BatchTooSmallError`."""
        if len(hs) < 2:
            raise ValueError(f"DCCA needs at least 2 views, got {len(hs)}")
        if self.gather_distributed:
            hs = tuple(gather(h) for h in hs)
            mask = None if mask is None else gather(mask.float()) > 0.5
        corrs = []
        for v, w in itertools.combinations(range(len(hs)), 2):
            h1, h2 = hs[v], hs[w]
            if mask is not None and not bool(mask[:, [v, w]].all()):
                both = mask[:, v] & mask[:, w]
                if int(both.sum()) <= max(h1.shape[1], h2.shape[1]):
                    continue
                h1, h2 = h1[both], h2[both]
            corrs.append(self.correlation(h1, h2))
        if not corrs:
            return hs[0].new_zeros(())
        total = torch.stack(corrs)
        corr = total.mean() if self.pairs == "mean" else total.sum()
        return (-corr).to(hs[0].dtype)

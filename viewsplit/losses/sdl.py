"""Stochastic Decorrelation Loss (SDL) and the Soft CCA objective (Chang, Xiang, Hospedales, CVPR 2018,
arXiv 1707.09669; docs/methods.md#sdl-soft-cca-and-fae).

SDL, paper form, for one view's embedding Z ∈ R^{m×k} at training step t::

    Z̃        = BN(Z)                                 (batch statistics, biased variance, eps)
    Σ_mini,t = Z̃ᵀZ̃ / (m − 1)
    Σ_acc,t  = α · sg(Σ_acc,t−1) + Σ_mini,t ,         Σ_acc,0 = 0
    c_t      = α · c_{t−1} + 1 ,                        c_0 = 0
    Φ_t      = Σ_acc,t / c_t
    SDL_t    = Σ_{i≠j} |Φ_t,ij|          ("sum");  divided by k(k − 1) for "mean"

Soft CCA (V views): L = mean_{v<w} align(Z̃_v, Z̃_w) + λ Σ_v SDL(Z_v), with align = MSE
‖Z̃_v − Z̃_w‖²_F / (m k) (default) or ``fro`` = ‖Z̃_v − Z̃_w‖²_F.  The paper defines two views; the
mean over view pairs is viewsplit's extension.

There is no official code.  Deviations from the third-party versions (cca_zoo, dburian), on purpose:
the running covariance is on by default (cca_zoo HEAD uses each batch alone, S1; ``running=False``
reproduces that), no data-set-size scaling (S2), no double normalisation (S3), the reduction is a
required, recorded choice (S4), and eval mode uses the normaliser α·c + 1 of the step it previews
(S5).  Z̃ uses the batch's own statistics in both modes, as BatchNorm1d in training mode does; the
loss keeps no running mean or variance because it only needs the batch's correlation.

DDP: with ``gather_distributed=True`` (default) Z is gathered from every rank with the
autograd-aware :func:`~viewsplit.distributed.gather` before anything is computed, so BN,
Σ_mini and the state use the global batch and every rank computes the same loss and buffers; after
the engine averages the gradients over the ranks (as DDP does) they equal a single process on the whole batch.
With ``False`` each rank uses its own shard and keeps its own state (per-rank mode).
"""
from __future__ import annotations

import itertools
from typing import cast

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from ..distributed import gather

REDUCTIONS = ("sum", "mean")
ALIGNMENTS = ("mse", "fro")


def batch_standardize(z: Tensor, eps: float = 1e-5) -> Tensor:
    """(Z − mean_col) / sqrt(var_col + eps) with the biased variance: BatchNorm1d(affine=False), training mode."""
    centred = z - z.mean(0, keepdim=True)
    return centred / torch.sqrt(centred.pow(2).mean(0, keepdim=True) + eps)


class _Gram(torch.autograd.Function):
    """ZᵀZ whose backward is the single product Z (G + Gᵀ); autograd would compute two."""

    @staticmethod
    def forward(ctx: FunctionCtx, z: Tensor) -> Tensor:
        ctx.save_for_backward(z)
        return z.T @ z

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> Tensor:
        (z,) = ctx.saved_tensors  # type: ignore[attr-defined]  # torch's FunctionCtx stub omits saved_tensors
        return z @ (grad + grad.T)


def gram(z: Tensor) -> Tensor:
    """ZᵀZ (k × k) for Z (m × k), with a one-product backward."""
    return _Gram.apply(z)


def _check(reduction: str, alpha: float, eps: float) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must lie in [0, 1), got {alpha}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


class StochasticDecorrelationLoss(nn.Module):
    """SDL with the paper's running covariance (formula in the module docstring).

    Args:
        dim: k, the embedding width (the size of the Σ_acc buffer).
        alpha: decay α ∈ [0, 1) of the running covariance (viewsplit default 0.2 = cca_zoo's ρ;
            the paper's value is unknown).
        reduction: ``"sum"`` over the k(k − 1) off-diagonal entries, or their ``"mean"``.
        eps: BatchNorm epsilon of Z̃.
        running: ``False`` gives per-batch SDL, Φ = Σ_mini (cca_zoo HEAD), and never touches the state.
        gather_distributed: compute everything from the global batch under DDP (see module docstring).

    State: buffers ``cov_acc`` (Σ_acc) and ``count`` (c), saved in the ``state_dict`` and advanced
    only in training mode.  In eval mode Φ = (α Σ_acc + Σ_mini)/(α c + 1) without committing it.
    Gradients flow only through Σ_mini: ∂SDL/∂Σ_mini = sign(Φ)/c off the diagonal.
    """

    cov_acc: Tensor
    count: Tensor

    def __init__(self, dim: int, alpha: float = 0.2, reduction: str = "sum", eps: float = 1e-5,
                 running: bool = True, gather_distributed: bool = True):
        super().__init__()
        _check(reduction, alpha, eps)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.alpha, self.reduction, self.eps = dim, alpha, reduction, eps
        self.running, self.gather_distributed = running, gather_distributed
        self.register_buffer("cov_acc", torch.zeros(dim, dim))
        self.register_buffer("count", torch.zeros(()))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, alpha={self.alpha}, reduction={self.reduction!r}, eps={self.eps}, "
                f"running={self.running}, gather_distributed={self.gather_distributed}")

    def reset(self) -> None:
        """Forget the running covariance (Σ_acc = 0, c = 0)."""
        self.cov_acc.zero_()
        self.count.zero_()

    def minibatch_covariance(self, z: Tensor) -> Tensor:
        """Σ_mini = BN(Z)ᵀ BN(Z) / (m − 1) of a batch that is already global (no gathering here).

        Computed as D G D / (m − 1) with G = Z_cᵀZ_c (Z_c centred) and D = diag(G/m + eps)^{-1/2}:
        the same matrix, but the scaling acts on k × k instead of m × k entries.
        """
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"SDL expects a (m, {self.dim}) batch, got shape {tuple(z.shape)}")
        m = z.shape[0]
        if m < 2:
            raise ValueError(f"SDL needs a batch of at least 2 samples, got {m}")
        g = gram(z - z.mean(0, keepdim=True))
        inv_std = torch.rsqrt(g.diagonal() / m + self.eps)
        return g * inv_std[:, None] * inv_std[None, :] / (m - 1)

    def forward(self, z: Tensor) -> Tensor:
        """SDL of the batch Z (m, k); advances the running state in training mode."""
        return self.global_batch_loss(gather(z) if self.gather_distributed else z)

    def global_batch_loss(self, z: Tensor) -> Tensor:
        """:meth:`forward` on a batch that the caller has already gathered (or wants per rank)."""
        with torch.autocast(z.device.type, enabled=False):
            z = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
            sigma = self.minibatch_covariance(z)
            if self.running:
                acc = self.alpha * self.cov_acc.to(sigma.dtype) + sigma
                count = self.alpha * self.count.to(sigma.dtype) + 1.0
                phi = acc / count
                if self.training:
                    self.cov_acc.copy_(acc.detach())
                    self.count.copy_(count.detach())
            else:
                phi = sigma
            return off_diagonal_abs(phi, self.reduction)


def off_diagonal_abs(phi: Tensor, reduction: str = "sum") -> Tensor:
    """Σ_{i≠j} |Φ_ij|, or that sum / k(k − 1) for ``"mean"`` (0 when k = 1)."""
    k = phi.shape[0]
    total = (phi - torch.diag_embed(phi.diagonal())).abs().sum()
    if reduction == "mean":
        return total / (k * (k - 1)) if k > 1 else total * 0.0
    return total


class SoftCCALoss(nn.Module):
    """Soft CCA: L = mean_{v<w} align(Z̃_v, Z̃_w) + λ Σ_v SDL(Z_v) (module docstring;
    docs/methods.md#sdl-soft-cca-and-fae).

    Args:
        dim: k, each view's embedding width.
        n_views: V ≥ 2; one SDL state per view.
        lam: λ, the SDL weight.
        alpha, reduction, eps, running, gather_distributed: as in :class:`StochasticDecorrelationLoss`
            (``eps`` is also the epsilon of the alignment's BN).
        align: ``"mse"`` (‖Z̃_v − Z̃_w‖²_F / (m k), cca_zoo and dburian) or ``"fro"`` (‖·‖²_F).
        align_dim: align only the first ``align_dim`` coordinates (the factorisation autoencoder's
            shared code); ``None`` = all k.  SDL always covers all k.

    ``forward(zs, mask)`` returns ``{"objective", "align", "sdl"}`` (all differentiable).  Missing
    views (``mask[b, v]`` False): BN statistics and SDL of view v use only the samples where it is
    present; the pair (v, w) is aligned on the samples where both are present (mean over them);
    a term with fewer than 2 such samples in the (global) batch is skipped and leaves its SDL state
    unchanged.  The per-pair alignment is averaged over the pairs that were not skipped.
    """

    def __init__(self, dim: int, n_views: int = 2, lam: float = 0.5, alpha: float = 0.2, reduction: str = "mean",
                 align: str = "mse", eps: float = 1e-5, running: bool = True, gather_distributed: bool = True,
                 align_dim: int | None = None):
        super().__init__()
        if align not in ALIGNMENTS:
            raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
        if n_views < 2:
            raise ValueError(f"Soft CCA needs at least 2 views, got {n_views}")
        if align_dim is not None and not 1 <= align_dim <= dim:
            raise ValueError(f"align_dim must lie in [1, {dim}], got {align_dim}")
        self.lam, self.align, self.eps, self.gather_distributed = lam, align, eps, gather_distributed
        self.align_dim = dim if align_dim is None else align_dim
        self.sdl = nn.ModuleList(StochasticDecorrelationLoss(dim, alpha, reduction, eps, running, False)
                                 for _ in range(n_views))

    def sdl_losses(self) -> list[StochasticDecorrelationLoss]:
        """The per-view SDL modules (``sdl``), typed: ``nn.ModuleList`` items are plain modules to a type checker."""
        return cast("list[StochasticDecorrelationLoss]", list(self.sdl))

    def alignment(self, a: Tensor, b: Tensor) -> Tensor:
        sq = (a - b).pow(2).sum()
        return sq / a.numel() if self.align == "mse" else sq

    def forward(self, zs: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        if len(zs) != len(self.sdl):
            raise ValueError(f"expected {len(self.sdl)} views, got {len(zs)}")
        if mask is None:
            mask = torch.ones(zs[0].shape[0], len(zs), dtype=torch.bool, device=zs[0].device)
        if self.gather_distributed:
            zs = [gather(z) for z in zs]
            mask = gather(mask.float()) > 0.5
        present = [mask[:, v] for v in range(len(zs))]
        full = [bool(p.all()) for p in present]
        # each view standardised over the samples where it is present (zeros elsewhere, never used)
        normed: list[Tensor | None] = []
        for z, p, f in zip(zs, present, full):
            if f:
                normed.append(batch_standardize(z[:, : self.align_dim], self.eps))
            elif int(p.sum()) >= 2:
                idx = p.nonzero(as_tuple=True)[0]
                out = z.new_zeros(z.shape[0], self.align_dim)
                normed.append(out.index_copy(0, idx, batch_standardize(z[idx, : self.align_dim], self.eps)))
            else:
                normed.append(None)
        zero = zs[0].new_zeros(())
        aligns = []
        for v, w in itertools.combinations(range(len(zs)), 2):
            nv, nw = normed[v], normed[w]
            if nv is None or nw is None:
                continue
            if full[v] and full[w]:
                aligns.append(self.alignment(nv, nw))
                continue
            both = present[v] & present[w]
            if int(both.sum()) >= 2:
                aligns.append(self.alignment(nv[both], nw[both]))
        align = torch.stack(aligns).mean() if aligns else zero
        sdl = zero
        for z, p, f, module in zip(zs, present, full, self.sdl_losses()):
            if f:
                sdl = sdl + module.global_batch_loss(z)
            elif int(p.sum()) >= 2:
                sdl = sdl + module.global_batch_loss(z[p])
        return {"objective": align + self.lam * sdl, "align": align, "sdl": sdl}

"""DeCUR and Barlow Twins losses on the batch-normalised cross-correlation of the global batch.

Wang et al., "Decoupling Common and Unique Representations for Multimodal Self-supervised
Learning", ECCV 2024 (arXiv 2309.05300); Zbontar et al., "Barlow Twins", ICML 2021.
Specification: docs/methods.md#decur (reference code zhu-xlab/DeCUR @ f190e9a).

    BN(Z)    = (Z − mean_b Z) / sqrt(var_b Z + eps)            (biased variance; BatchNorm1d(affine=False))
    Ĉ(A, B)  = BN(A)ᵀ BN(B) / N                                 N = the global batch size
    L_BT(C)  = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²
    L_com(C) = L_BT(C[:K_c, :K_c]),   L_uni(C) = Σ_{i≥K_c} C_ii² + λ Σ_{i≠j; i,j≥K_c} C_ij²
    L        = (L_M1 + L_M2 + (L_com + L_uni)/2) / 3            L_Mm = L_BT(Ĉ(z_m¹, z_m²)), cross term on Ĉ(z_1¹, z_2¹)

The off-diagonal blocks C[:K_c, K_c:] and C[K_c:, :K_c] are not penalised.

**Distributed semantics** (``gather_distributed``, default True): under ``torch.distributed``
the embeddings of every rank are concatenated with the autograd-aware
:func:`~viewsplit.distributed.gather`, so BN statistics and Ĉ are those of the global
batch and Ĉ is divided by the true global N = Σ_ranks n_r.  Every rank then computes the same
loss, and DDP's gradient averaging yields exactly the single-process gradient on the
concatenated batch.  (The reference divides by ``batch_size * 4`` and sums with a raw
``all_reduce`` invisible to autograd — defect X2.)  With False, each rank uses its local batch
only.  Without a process group the flag has no effect.

**Generalisations** (viewsplit; the paper has two modalities):

* V ≥ 2 views: L = (2 · mean_v L_Mv + mean_{v<w} (L_com + L_uni)(Ĉ(z_v¹, z_w¹))/2) / 3, which is
  the formula above for V = 2 and keeps its 2 : 1 intra/cross balance for any V.
* Missing views (``mask`` (B, V) bool): L_Mv uses the samples where view v is present, the
  cross term of (v, w) the samples where both are present (BN statistics and N included).  A
  term with fewer than two such samples in the global batch is left out of its mean.
* K_c = K (no unique block) is Barlow Twins with intra-view terms and no decoupling.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..distributed import gather

#: the off-diagonal weight of Barlow Twins and DeCUR (reference default)
LAMBDA = 0.0051


def _float(x: Tensor) -> Tensor:
    """Half-precision inputs are promoted to float32: Ĉ sums N products per entry."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def batch_normalise(z: Tensor, eps: float = 1e-5) -> Tensor:
    """BN(Z) = (Z − mean_b Z) / sqrt(var_b Z + eps) over the rows (dim −2), biased variance
    (``BatchNorm1d(affine=False)`` in train mode); leading dims are independent batches."""
    z = _float(z)
    centred = z - z.mean(-2, keepdim=True)
    return centred / torch.sqrt(centred.pow(2).mean(-2, keepdim=True) + eps)


def cross_correlation(a: Tensor, b: Tensor, eps: float = 1e-5, gather_distributed: bool = True) -> Tensor:
    """Ĉ(A, B) = BN(A)ᵀ BN(B) / N over the global batch (K_a × K_b).

    ``a`` and ``b`` are (n, K) embeddings of the same samples.  With ``gather_distributed`` and an
    initialised process group, both are gathered (autograd-aware) from every rank first and N is
    the global number of rows.
    """
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"cross_correlation: {a.shape[0]} rows in A but {b.shape[0]} in B")
    if gather_distributed:
        a, b = gather(a), gather(b)
    return batch_normalise(a, eps).T @ batch_normalise(b, eps) / a.shape[0]


def _off_diagonal_sq(c: Tensor) -> Tensor:
    return c.pow(2).sum((-2, -1)) - torch.diagonal(c, dim1=-2, dim2=-1).pow(2).sum(-1)


def barlow_twins_objective(c: Tensor, lam: float = LAMBDA) -> Tensor:
    """L_BT(C) = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij² for square cross-correlation matrices C (…, K, K)."""
    return (1.0 - torch.diagonal(c, dim1=-2, dim2=-1)).pow(2).sum(-1) + lam * _off_diagonal_sq(c)


def common_unique_objectives(c: Tensor, n_common: int, lam: float = LAMBDA) -> tuple[Tensor, Tensor]:
    """(L_com, L_uni) of cross-view correlation matrices C (…, K, K) with common dims 0..K_c−1.

    L_com = L_BT(C[:K_c, :K_c]); L_uni = Σ_{i≥K_c} C_ii² + λ Σ_{i≠j; i,j≥K_c} C_ij² (the unique
    diagonal is pushed to 0).  The blocks C[:K_c, K_c:] and C[K_c:, :K_c] are not penalised.
    """
    k = c.shape[-1]
    if c.dim() < 2 or c.shape[-2] != k or not 0 <= n_common <= k:
        raise ValueError(f"common_unique_objectives: need square C and 0 <= n_common <= K, got {tuple(c.shape)}, "
                         f"n_common={n_common}")
    common = barlow_twins_objective(c[..., :n_common, :n_common], lam)
    uni = c[..., n_common:, n_common:]
    unique = torch.diagonal(uni, dim1=-2, dim2=-1).pow(2).sum(-1) + lam * _off_diagonal_sq(uni)
    return common, unique


def barlow_twins_loss(a: Tensor, b: Tensor, lam: float = LAMBDA, eps: float = 1e-5,
                      gather_distributed: bool = True) -> Tensor:
    """L_BT(Ĉ(A, B)) (Zbontar et al., 2021) on the global batch."""
    return barlow_twins_objective(cross_correlation(a, b, eps, gather_distributed), lam)


def _correlations(z1: Sequence[Tensor], z2: Sequence[Tensor], mask: Tensor | None,
                  eps: float) -> tuple[Tensor | None, Tensor | None]:
    """Stacked Ĉ(z_v¹, z_v²) over views and Ĉ(z_v¹, z_w¹) over pairs v < w (None when no term has 2 rows).

    Without missing views every embedding is normalised once and all matrices come from two
    batched products; otherwise each term normalises its own rows.
    """
    n_views = len(z1)
    pairs = torch.triu_indices(n_views, n_views, 1).tolist()
    if mask is None:
        n1, n2 = batch_normalise(torch.stack(list(z1)), eps), batch_normalise(torch.stack(list(z2)), eps)
        n = n1.shape[1]
        cross_all = torch.einsum("vnk,wnl->vwkl", n1, n1)[pairs[0], pairs[1]] / n
        return torch.einsum("vnk,vnl->vkl", n1, n2) / n, cross_all

    def corr(a: Tensor, b: Tensor, keep: Tensor) -> Tensor | None:
        if bool(keep.all()):
            return cross_correlation(a, b, eps, gather_distributed=False)
        return cross_correlation(a[keep], b[keep], eps, gather_distributed=False) if int(keep.sum()) >= 2 else None

    intra = [c for v in range(n_views) if (c := corr(z1[v], z2[v], mask[:, v])) is not None]
    cross = [c for v, w in zip(*pairs) if (c := corr(z1[v], z1[w], mask[:, v] & mask[:, w])) is not None]
    return (torch.stack(intra) if intra else None), (torch.stack(cross) if cross else None)


def decur_loss(z1: Sequence[Tensor], z2: Sequence[Tensor], n_common: int, lam: float = LAMBDA, eps: float = 1e-5,
               mask: Tensor | None = None, gather_distributed: bool = True) -> dict[str, Tensor]:
    """The DeCUR objective for V ≥ 2 views (module docstring); returns its terms.

    ``z1[v]``, ``z2[v]``: (B, K) projector outputs of two augmentations of view v; ``mask`` (B, V)
    marks the present views (None = all; under DDP pass it on every rank or on none).  Rows of
    absent views are ignored whatever their values.  Returns ``loss`` and the logged terms
    ``intra`` (mean_v L_Mv), ``common`` and ``unique`` (means over view pairs of L_com and L_uni).
    """
    n_views = len(z1)
    if n_views < 2 or len(z2) != n_views:
        raise ValueError(f"decur_loss: need two lists of at least 2 views' embeddings, got {len(z1)} and {len(z2)}")
    if gather_distributed:
        z1, z2 = [gather(z) for z in z1], [gather(z) for z in z2]
        if mask is not None:
            mask = gather(mask.to(torch.uint8)).bool()
    if mask is not None and bool(mask.all()):
        mask = None
    intra, cross = _correlations(z1, z2, mask, eps)
    zero = _float(z1[0]).new_zeros(())
    l_intra = barlow_twins_objective(intra, lam).mean() if intra is not None else zero
    l_com, l_uni = (t.mean() for t in common_unique_objectives(cross, n_common, lam)) if cross is not None \
        else (zero, zero)
    loss = (2.0 * l_intra + (l_com + l_uni) / 2.0) / 3.0
    return {"loss": loss, "intra": l_intra, "common": l_com, "unique": l_uni}


class BarlowTwinsLoss(nn.Module):
    """``forward(a, b)`` = L_BT(Ĉ(a, b)) over the global batch (see :func:`barlow_twins_loss`)."""

    def __init__(self, lam: float = LAMBDA, eps: float = 1e-5, gather_distributed: bool = True):
        super().__init__()
        self.lam, self.eps, self.gather_distributed = lam, eps, gather_distributed

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return barlow_twins_loss(a, b, self.lam, self.eps, self.gather_distributed)


class DeCURLoss(nn.Module):
    """``forward(z1, z2, mask=None)`` = the DeCUR loss L (see :func:`decur_loss`).

    Example (two views, K = 8, K_c = 6)::

        loss = DeCURLoss(n_common=6)([z11, z21], [z12, z22])
    """

    def __init__(self, n_common: int, lam: float = LAMBDA, eps: float = 1e-5, gather_distributed: bool = True):
        super().__init__()
        self.n_common, self.lam, self.eps, self.gather_distributed = n_common, lam, eps, gather_distributed

    def forward(self, z1: Sequence[Tensor], z2: Sequence[Tensor], mask: Tensor | None = None) -> Tensor:
        return decur_loss(z1, z2, self.n_common, self.lam, self.eps, mask, self.gather_distributed)["loss"]

"""DMRNet's objective, modality drop and weak-combination choice (docs/methods.md#dmrnet).

Robust Multimodal Learning via Representation Decoupling (Wei et al., ECCV 2024, arXiv 2407.04458);
reference code shicaiwei123/ECCV2024-DMRNet @ 8472850.  A sample's fused features give a
probabilistic embedding N(μ, diag σ²); with one sample e = μ + ε ⊙ σ, logits = fc(e) and labels y::

    L      = mean_b CE_b + α · mean_b KL_b + β · L_hard
    KL_b   = ½ Σ_d (σ²_bd + μ²_bd − log σ²_bd − 1)
    L_hard = (1/B) Σ_b CE'_b · 1[combination of b is hard]          (0 until the hard set is chosen)

CE'_b is CE_b itself with the reference's shared auxiliary head, or the CE of a separate head.

A **combination** is the set of views a sample sees, coded as the bitmask c = Σ_v 2^v · mask[b, v]
∈ {1, …, 2^V − 1}; per-combination tensors are indexed by c − 1.  The reference (two modalities)
draws one of {[1,0], [0,1], [1,1]} uniformly per sample; :func:`~viewsplit.models.masking.modality_drop` draws uniformly
among the non-empty subsets of the views a sample *has* (all 2^V − 1 for a complete sample).

The weak combination: during the first epochs the mean σ² (over dims) of the samples of each
combination is accumulated (:class:`WeakCombinationTracker`, defects N3–N5 fixed: sums and counts
per epoch, divided once, empty combinations skipped), then the candidates with the highest mean
are marked hard ("higher variance" = "weaker").
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributed import is_distributed
from .kl import gaussian_kl

#: which combinations may be chosen as hard: ``single`` (one view, the reference's weak modality)
#: or ``all`` (every combination except the full set)
HARD_CANDIDATES = ("single", "all")


def combination_codes(mask: Tensor) -> Tensor:
    """``(B, V)`` bool → ``(B,)`` long bitmask codes c = Σ_v 2^v · mask[:, v] (1 … 2^V − 1 for valid rows)."""
    weights = 2 ** torch.arange(mask.shape[1], device=mask.device)
    return (mask.long() * weights).sum(1)


def combination_masks(n_views: int, device: torch.device | str | None = None) -> Tensor:
    """``(2^V − 1, V)`` bool: row c − 1 is the mask of combination code c."""
    codes = torch.arange(1, 2**n_views, device=device)
    return (codes[:, None] >> torch.arange(n_views, device=device)) & 1 == 1


def pme_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """mean_b ½ Σ_d (σ² + μ² − log σ² − 1) with σ² = e^{logvar}: the KL of the embedding from N(0, I)."""
    return gaussian_kl(mu, logvar).mean()


def hard_combination_loss(ce: Tensor, codes: Tensor, hard: Tensor) -> Tensor:
    """L_hard = (1/B) Σ_b ce_b · hard[c_b − 1], divided by the **full** batch size B (reference).

    ``ce`` (B,) per-sample losses, ``codes`` (B,) combination codes, ``hard`` (2^V − 1,) bool.
    Exactly 0 (never NaN) when no sample of the batch has a hard combination.
    """
    return (ce * hard[codes - 1].to(ce.dtype)).sum() / ce.shape[0]


class DMRNetLoss(nn.Module):
    """L = mean CE + α · KL + β · L_hard (the reference objective; see the module docstring).

    ``forward(logits, labels, mu, logvar, codes, hard, aux_logits=None)`` returns ``objective`` and
    the detached terms ``ce``, ``kl``, ``hard`` (L_hard, before β) and ``hard_fraction`` (the share
    of the batch in hard combinations).  ``aux_logits`` (a separate auxiliary head) replace the main
    logits inside L_hard; by default the main head's CE is reused, as in the reference.
    """

    def __init__(self, alpha: float = 1e-3, beta: float = 0.2):
        super().__init__()
        self.alpha, self.beta = alpha, beta

    def forward(self, logits: Tensor, labels: Tensor, mu: Tensor, logvar: Tensor, codes: Tensor, hard: Tensor,
                aux_logits: Tensor | None = None) -> dict[str, Tensor]:
        ce = F.cross_entropy(logits, labels, reduction="none")
        ce_hard = ce if aux_logits is None else F.cross_entropy(aux_logits, labels, reduction="none")
        kl = pme_kl(mu, logvar)
        l_hard = hard_combination_loss(ce_hard, codes, hard)
        objective = ce.mean() + self.alpha * kl + self.beta * l_hard
        return {"objective": objective, "ce": ce.mean().detach(), "kl": kl.detach(), "hard": l_hard.detach(),
                "hard_fraction": hard[codes - 1].float().mean()}


class WeakCombinationTracker(nn.Module):
    """Per-combination mean σ² over the first epochs, and the hard combinations chosen from it.

    Buffers (checkpointed with the model, so a resumed run continues the same choice), indexed by
    combination code − 1: the running epoch's σ² ``sums`` and sample ``counts``; ``score_sum`` /
    ``score_epochs``, the sum and number of the per-epoch means; ``hard``, the chosen set.

    * :meth:`update` adds a batch's per-sample mean σ² by combination;
    * :meth:`end_epoch` turns the epoch's sums into means (all-reduced over DDP ranks first, so
      every rank chooses alike), adds them to the scores and resets the sums; a combination
      without samples in the epoch is skipped (N3);
    * :meth:`choose` marks the ``k`` candidates with the largest mean of epoch means as hard.

    The reference sums the epoch means; their mean ranks alike when every candidate is seen in
    every epoch and does not penalise a rarely drawn combination that missed an epoch.
    """

    sums: Tensor
    counts: Tensor
    score_sum: Tensor
    score_epochs: Tensor
    hard: Tensor

    def __init__(self, n_views: int):
        super().__init__()
        n = 2**n_views - 1
        self.n_views = n_views
        self.register_buffer("sums", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("counts", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("score_sum", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("score_epochs", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("hard", torch.zeros(n, dtype=torch.bool))

    @torch.no_grad()
    def update(self, variance: Tensor, codes: Tensor) -> None:
        """Add per-sample mean σ² ``variance`` (B,) to the combinations ``codes`` (B,)."""
        idx = codes - 1
        self.sums.index_add_(0, idx, variance.detach().to(self.sums.dtype))
        self.counts.index_add_(0, idx, torch.ones(idx.shape[0], dtype=self.counts.dtype, device=idx.device))

    @torch.no_grad()
    def end_epoch(self) -> None:
        if is_distributed():
            both = torch.stack([self.sums, self.counts])
            dist.all_reduce(both)
            self.sums.copy_(both[0])
            self.counts.copy_(both[1])
        seen = self.counts > 0
        self.score_sum[seen] += self.sums[seen] / self.counts[seen]
        self.score_epochs[seen] += 1
        self.sums.zero_()
        self.counts.zero_()

    def scores(self) -> Tensor:
        """Mean over epochs of each combination's mean σ²; NaN for combinations never seen."""
        return self.score_sum / self.score_epochs

    @torch.no_grad()
    def choose(self, k: int = 1, candidates: str = "single") -> Tensor:
        """Mark the ``k`` seen candidates with the highest score as hard; return their codes (best first)."""
        masks = combination_masks(self.n_views, self.hard.device)
        if candidates == "single":
            allowed = masks.sum(1) == 1
        elif candidates == "all":
            allowed = masks.sum(1) < self.n_views
        else:
            raise ValueError(f"candidates must be one of {HARD_CANDIDATES}, got {candidates!r}")
        unscored = torch.full_like(self.score_sum, -torch.inf)
        score = torch.where(allowed & (self.score_epochs > 0), self.scores(), unscored)
        k = min(k, int(torch.isfinite(score).sum()))
        top = score.topk(k).indices
        self.hard.zero_()
        self.hard[top] = True
        return top + 1

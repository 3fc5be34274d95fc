"""MRDD's stage-1 objective (Ke et al., CVPR 2024, arXiv 2403.10897; docs/methods.md#mrdd-stage-1)."""
from __future__ import annotations

from torch import Tensor

from .kl import gaussian_kl
from .reconstruction import masked_sse


def consistency_objective(xs: list[Tensor], x_hats: list[Tensor], mask: Tensor, mu: Tensor, logvar: Tensor,
                          alpha: float = 1.0, kl_weight: float = 1.0, reduction: str = "sum",
                          weights: list[float] | None = None) -> dict[str, Tensor]:
    """Stage-1 loss: α Σ_v SSE(x_v, x̂_v) + w_kl · mean_b KL(N(μ, e^{logvar}) ‖ N(0, I)).

    The targets ``xs`` are the *unmasked* views.  With the reference's ``sum`` reduction the SSE is
    summed over the batch while the KL is averaged over it, so the KL weighs very little.
    """
    recon = masked_sse(xs, x_hats, mask, reduction, weights)
    kl = gaussian_kl(mu, logvar).mean()
    return {"objective": alpha * recon + kl_weight * kl, "reconstruction": recon.detach(), "kl": kl.detach()}

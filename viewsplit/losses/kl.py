"""KL divergence of a diagonal Gaussian posterior from the standard normal prior."""
from __future__ import annotations

from torch import Tensor


def gaussian_kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ_d, e^{logvar_d}) ‖ N(0, 1)) = −½ (1 + logvar_d − μ_d² − e^{logvar_d}) of every sample and dim;
    shape of ``mu``."""
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-sample KL(N(μ, diag e^{logvar}) ‖ N(0, I)) = Σ_d of :func:`gaussian_kl_per_dim`; shape ``(B,)``."""
    return gaussian_kl_per_dim(mu, logvar).flatten(1).sum(1)

"""KL divergence of a diagonal Gaussian posterior from the standard normal prior."""
from __future__ import annotations

from torch import Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-sample KL(N(μ, diag e^{logvar}) ‖ N(0, I)) = −½ Σ_d (1 + logvar − μ² − e^{logvar}); shape ``(B,)``."""
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1)

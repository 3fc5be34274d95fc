"""Reconstruction losses that respect view availability."""
from __future__ import annotations

import torch
from torch import Tensor


def per_sample_sse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Σ over all non-batch dims of (x − x̂)²: shape ``(B,)``."""
    return (x - x_hat).pow(2).flatten(1).sum(1)


def masked_mean(values: Tensor, present: Tensor) -> Tensor:
    """Mean of ``values`` (B,) over the samples where ``present`` (B,) is True; 0 if none is."""
    present = present.to(values.dtype)
    return (values * present).sum() / present.sum().clamp_min(1.0)


def masked_view_mse(xs: list[Tensor], x_hats: list[Tensor], mask: Tensor) -> Tensor:
    """Σ_v mean over present samples of the per-sample mean squared error of view v.

    A view that is missing for a sample contributes nothing for that sample
    (protocols.md §9: per-view losses are multiplied by the mask and normalised by the count).
    """
    total = xs[0].new_zeros(())
    for v, (x, xh) in enumerate(zip(xs, x_hats)):
        total = total + masked_mean(per_sample_sse(x, xh) / x[0].numel(), mask[:, v])
    return total

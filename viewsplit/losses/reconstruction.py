"""Reconstruction losses that respect view availability."""
from __future__ import annotations

import torch
from torch import Tensor


def per_sample_sse(x: Tensor, x_hat: Tensor) -> Tensor:
    """Σ over all non-batch dims of (x − x̂)²: shape ``(B,)``."""
    return (x - x_hat).pow(2).flatten(1).sum(1)


def _masked_sum(values: Tensor, present: Tensor) -> Tensor:
    """Sum of ``values`` (B,) where ``present`` (B,) is True.  Absent entries are selected out, not
    multiplied by 0: whatever an absent view holds (even an error that overflows to inf) cannot
    reach the result (inf · 0 would be NaN)."""
    return torch.where(present, values, values.new_zeros(())).sum()


def masked_mean(values: Tensor, present: Tensor) -> Tensor:
    """Mean of ``values`` (B,) over the samples where ``present`` (B,) is True; 0 if none is."""
    return _masked_sum(values, present) / present.sum().clamp_min(1).to(values.dtype)


def masked_view_mse(xs: list[Tensor], x_hats: list[Tensor], mask: Tensor) -> Tensor:
    """Σ_v mean over present samples of the per-sample mean squared error of view v.

    A view that is missing for a sample contributes nothing for that sample
    (docs/evaluation.md#missing-views: per-view losses are multiplied by the mask and normalised by the count).
    """
    total = xs[0].new_zeros(())
    for v, (x, xh) in enumerate(zip(xs, x_hats)):
        total = total + masked_mean(per_sample_sse(x, xh) / x[0].numel(), mask[:, v])
    return total


def masked_sse(xs: list[Tensor], x_hats: list[Tensor], mask: Tensor, reduction: str = "sum",
               weights: list[float] | None = None) -> Tensor:
    """Σ_v w_v Σ_{b: view v present} ‖x_v,b − x̂_v,b‖²  (MRDD's "SSE-sum", ``mse_loss(reduction='sum')``).

    ``reduction="batch_mean"`` divides each view's sum by its number of present samples, making
    the loss independent of the batch size (sum over features, mean over samples).  ``weights``
    (default all 1) scale the views, e.g. :func:`equal_view_weights`.
    """
    total = xs[0].new_zeros(())
    for v, (x, xh) in enumerate(zip(xs, x_hats)):
        sse = per_sample_sse(x, xh)
        term = masked_mean(sse, mask[:, v]) if reduction == "batch_mean" else _masked_sum(sse, mask[:, v])
        total = total + (term if weights is None else weights[v] * term)
    return total


def equal_view_weights(view_sizes: list[int]) -> list[float]:
    """w_v = mean(D) / D_v: every view weighs the same in an SSE however many features it has.

    Identity when all views have the same size; the total stays on the scale of the plain sum.
    """
    mean = sum(view_sizes) / len(view_sizes)
    return [mean / d for d in view_sizes]

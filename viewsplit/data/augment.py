"""Batch augmentations in plain torch, for methods that train on augmented views (MIB, DeCUR).

Every function draws its random parameters per sample from an explicit ``torch.Generator`` (or
the global RNG when none is given), so a seeded generator reproduces the same views.

* images ``(B, C, H, W)``: :func:`random_affine` (torchvision ``RandomAffine`` semantics, nearest
  interpolation, zero fill), :func:`pixel_corruption` (MIB's ``PixelCorruption``);
* vectors ``(B, D)``: :func:`feature_noise` and :func:`feature_dropout`;
* several views of one sample: :func:`augment_registered` (image views of one size share a transform).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..typed import check_positive


@dataclass
class AugmentConfig:
    """Augmentation strengths (``model.augment.*``); the defaults are MIB's
    (docs/datasets.md#mib-augmentation-pairs)."""

    #: images: rotation (±degrees), translation (fraction of the size), scale range, x-shear (±degrees)
    degrees: float = 15.0
    translate: float = 0.1
    scale_min: float = 0.9
    scale_max: float = 1.1
    shear: float = 15.0
    #: images: probability of zeroing a pixel (the mask is shared over channels)
    corruption: float = 0.2
    #: vectors: std of additive Gaussian noise (in the features' units) and feature drop probability
    noise_std: float = 0.1
    feature_drop: float = 0.2

    def validate(self, key: str) -> None:
        for name in ("degrees", "translate", "shear", "noise_std"):
            check_positive(getattr(self, name), f"{key}.{name}", allow_zero=True)
        for name in ("corruption", "feature_drop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                check_positive(-1, f"{key}.{name} (a probability in [0, 1))")
        if not 0 < self.scale_min <= self.scale_max:
            check_positive(-1, f"{key}.scale_min/scale_max (need 0 < scale_min <= scale_max)")


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def affine_matrices(angle: Tensor, translate: Tensor, scale: Tensor, shear: Tensor) -> Tensor:
    """Forward maps ``(N, 3, 3)`` about the image centre, in pixel units: T · R(angle) · S(scale) · SHx(shear)."""
    a, s = torch.deg2rad(angle), torch.deg2rad(shear)
    m = torch.zeros(angle.shape[0], 3, 3)
    m[:, 0, 0] = scale * torch.cos(a)
    m[:, 0, 1] = scale * (torch.cos(a) * torch.tan(s) - torch.sin(a))
    m[:, 1, 0] = scale * torch.sin(a)
    m[:, 1, 1] = scale * (torch.sin(a) * torch.tan(s) + torch.cos(a))
    m[:, 0, 2], m[:, 1, 2] = translate[:, 0], translate[:, 1]
    m[:, 2, 2] = 1.0
    return m


def warp(x: Tensor, matrices: Tensor, mode: str = "nearest") -> Tensor:
    """Apply forward pixel-space affine maps (about the centre) with ``grid_sample``, zero fill."""
    _, _, h, w = x.shape
    to_norm = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0]))
    theta = to_norm @ torch.linalg.inv(matrices) @ torch.linalg.inv(to_norm)   # output → input coordinates
    grid = F.affine_grid(theta[:, :2].to(x.device, torch.float32), list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode=mode, padding_mode="zeros", align_corners=False).to(x.dtype)


def random_affine(x: Tensor, cfg: AugmentConfig, g: torch.Generator | None = None) -> Tensor:
    """angle ~ U(±degrees), (dx, dy) ~ U(±translate·(W, H)) rounded to pixels, scale ~ U(scale range),
    x-shear ~ U(±shear); nearest interpolation, zero fill (torchvision RandomAffine)."""
    n, _, h, w = x.shape
    angle = _uniform(n, -cfg.degrees, cfg.degrees, g)
    tx = torch.round(_uniform(n, -cfg.translate * w, cfg.translate * w, g))
    ty = torch.round(_uniform(n, -cfg.translate * h, cfg.translate * h, g))
    scale = _uniform(n, cfg.scale_min, cfg.scale_max, g)
    shear = _uniform(n, -cfg.shear, cfg.shear, g)
    return warp(x, affine_matrices(angle, torch.stack([tx, ty], 1), scale, shear))


def pixel_corruption(x: Tensor, p: float, g: torch.Generator | None = None) -> Tensor:
    """Zero each pixel with probability ``p`` (one mask for all channels of a pixel)."""
    keep = torch.rand(x.shape[0], 1, *x.shape[2:], generator=g) >= p
    return x * keep.to(x.device, x.dtype)


def feature_noise(x: Tensor, std: float, g: torch.Generator | None = None) -> Tensor:
    return x + std * torch.randn(x.shape, generator=g).to(x.device, x.dtype)


def feature_dropout(x: Tensor, p: float, g: torch.Generator | None = None) -> Tensor:
    """Zero each feature with probability ``p`` (no rescaling: the view stays on its own scale)."""
    return x * (torch.rand(x.shape, generator=g) >= p).to(x.device, x.dtype)


def augment(x: Tensor, cfg: AugmentConfig, g: torch.Generator | None = None) -> Tensor:
    """One random augmentation of a batch: affine + pixel corruption for images, noise + feature
    dropout for vectors."""
    if x.dim() == 4:
        return pixel_corruption(random_affine(x, cfg, g), cfg.corruption, g)
    return feature_dropout(feature_noise(x, cfg.noise_std, g), cfg.feature_drop, g)


def augment_registered(views: list[Tensor], cfg: AugmentConfig) -> list[Tensor]:
    """One random augmentation per sample; image views of the same height and width share it (they are
    stacked along channels and transformed together), every other view gets its own."""
    out = list(views)
    sizes = [tuple(x.shape[2:]) if x.dim() == 4 else None for x in views]
    for size in dict.fromkeys(s for s in sizes if s is not None):
        group = [v for v, s in enumerate(sizes) if s == size]
        joint = augment(torch.cat([views[v] for v in group], 1), cfg)
        for v, x in zip(group, joint.split([views[v].shape[1] for v in group], 1)):
            out[v] = x
    return [augment(x, cfg) if sizes[v] is None else out[v] for v, x in enumerate(views)]

"""The few image operations viewsplit needs, in plain torch (no torchvision, no OpenCV).

All functions take float or uint8 tensors shaped ``(N, C, H, W)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def dilate3x3(x: Tensor) -> Tensor:
    """Grey dilation with a 3×3 all-ones element; out-of-image neighbours are ignored.

    Equals OpenCV's ``cv2.dilate(img, ones(3, 3))`` with its default border handling, i.e.
    max-pooling with kernel 3, stride 1 and −∞ padding.
    """
    return F.max_pool2d(x.float(), kernel_size=3, stride=1, padding=1).to(x.dtype)


def edge_map(x: Tensor) -> Tensor:
    """``dilate(x) − x``: the Edge-MNIST second view (docs/datasets.md#edge-mnist-and-edge-fmnist). Never negative."""
    return dilate3x3(x) - x


def resize(x: Tensor, size: int | tuple[int, int], *, antialias: bool = False) -> Tensor:
    """Bilinear resize with half-pixel centres (``align_corners=False``).

    uint8 input is rounded back to uint8, matching PIL's uint8 resize to within one grey level.
    Use ``antialias=True`` when downsampling.
    """
    hw = (size, size) if isinstance(size, int) else tuple(size)
    y = F.interpolate(x.float(), size=hw, mode="bilinear", align_corners=False, antialias=antialias)
    if x.dtype == torch.uint8:
        return y.round_().clamp_(0, 255).to(torch.uint8)
    return y


def _grey(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    v = maxc
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / maxc.clamp_min(1e-12), torch.zeros_like(maxc))
    dc = delta.clamp_min(1e-12)
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    return torch.stack([h, s, v], 1)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    i = i.long() % 6
    choices = [
        (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q),
    ]
    out = torch.zeros_like(x)
    for k, (r, g, b) in enumerate(choices):
        sel = (i == k).unsqueeze(1)
        out = torch.where(sel, torch.stack([r, g, b], 1), out)
    return out


def color_jitter(x: Tensor, brightness: float, contrast: float, saturation: float, hue: float,
                 order: list[int]) -> Tensor:
    """Apply ColorJitter's four operations with the given factors in the given order.

    ``x`` is float in [0, 1], shape ``(N, 3, H, W)`` (or 1 channel: saturation and hue are no-ops).
    Factors follow torchvision's definitions: brightness/contrast/saturation multiply, hue shifts
    the hue channel by ``hue`` (a fraction of the colour circle).
    """
    for op in order:
        if op == 0:
            x = (x * brightness).clamp(0, 1)
        elif op == 1:
            mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
            x = (contrast * x + (1 - contrast) * mean).clamp(0, 1)
        elif op == 2 and x.shape[1] == 3:
            x = (saturation * x + (1 - saturation) * _grey(x)).clamp(0, 1)
        elif op == 3 and x.shape[1] == 3:
            hsv = _rgb_to_hsv(x)
            hsv[:, 0] = (hsv[:, 0] + hue) % 1.0
            x = _hsv_to_rgb(hsv).clamp(0, 1)
    return x


"""Per-view encoders and decoders: an MLP for vector views, a small conv net for image views.

``view_encoder(shape, out_dim, cfg)`` maps ``(B, *shape)`` to ``(B, out_dim)``;
``view_decoder(shape, in_dim, cfg)`` maps ``(B, in_dim)`` back to ``(B, *shape)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import check_positive


@dataclass
class BackboneConfig:
    """Sizes of the default per-view networks (``model.backbone.*``)."""

    #: hidden widths of the MLP used for vector views
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    #: channels of the stride-2 conv stages used for image views
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    #: dropout after each hidden MLP layer
    dropout: float = 0.0
    #: BatchNorm after each hidden MLP layer
    norm: bool = True

    def validate(self, key: str) -> None:
        for i, h in enumerate(self.hidden):
            check_positive(h, f"{key}.hidden[{i}]")
        if not self.channels:
            check_positive(0, f"{key}.channels (needs at least one stage)")
        for i, c in enumerate(self.channels):
            check_positive(c, f"{key}.channels[{i}]")
        if not 0.0 <= self.dropout < 1.0:
            check_positive(-1, f"{key}.dropout (must lie in [0, 1))")


def mlp(sizes: list[int], *, norm: bool = True, dropout: float = 0.0, last_act: bool = False) -> nn.Sequential:
    """Linear layers with BatchNorm + ReLU between them (none after the last unless ``last_act``)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if not last or last_act:
            if norm:
                layers.append(nn.BatchNorm1d(sizes[i + 1]))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _conv_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _sizes(h: int, w: int, n: int) -> list[tuple[int, int]]:
    out = [(h, w)]
    for _ in range(n):
        h, w = (h + 1) // 2, (w + 1) // 2
        out.append((h, w))
    return out


class ConvEncoder(nn.Module):
    """Stride-2 conv stages (3×3, BN, ReLU) then a linear head: ``(B, C, H, W) → (B, out_dim)``."""

    def __init__(self, shape: tuple[int, int, int], channels: list[int], out_dim: int):
        super().__init__()
        c, h, w = shape
        stages, cin = [], c
        for cout in channels:
            stages.append(_conv_block(cin, cout, 2))
            cin = cout
        self.features = nn.Sequential(*stages)
        fh, fw = _sizes(h, w, len(channels))[-1]
        self.head = nn.Linear(cin * fh * fw, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: linear, then (nearest upsample + conv) stages; linear output."""

    def __init__(self, shape: tuple[int, int, int], channels: list[int], in_dim: int):
        super().__init__()
        c, h, w = shape
        self.sizes = _sizes(h, w, len(channels))[::-1]  # bottleneck first, image size last
        rev = list(reversed(channels))
        self.start = (rev[0], *self.sizes[0])
        self.fc = nn.Linear(in_dim, rev[0] * self.sizes[0][0] * self.sizes[0][1])
        self.stages = nn.ModuleList(
            _conv_block(rev[i], rev[i + 1] if i + 1 < len(rev) else rev[-1], 1) for i in range(len(rev))
        )
        self.out = nn.Conv2d(rev[-1], c, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        x = F.relu(self.fc(z)).view(z.shape[0], *self.start)
        for stage, size in zip(self.stages, self.sizes[1:]):
            x = stage(F.interpolate(x, size=size, mode="nearest"))
        return self.out(x)


def view_encoder(shape: tuple[int, ...], out_dim: int, cfg: BackboneConfig) -> nn.Module:
    if len(shape) == 1:
        return mlp([shape[0], *cfg.hidden, out_dim], norm=cfg.norm, dropout=cfg.dropout)
    if len(shape) == 3:
        return ConvEncoder(shape, cfg.channels, out_dim)
    raise ValueError(f"unsupported view shape {shape}: expected (D,) or (C, H, W)")


def view_decoder(shape: tuple[int, ...], in_dim: int, cfg: BackboneConfig) -> nn.Module:
    if len(shape) == 1:
        return mlp([in_dim, *reversed(cfg.hidden), shape[0]], norm=cfg.norm, dropout=cfg.dropout)
    if len(shape) == 3:
        return ConvDecoder(shape, cfg.channels, in_dim)
    raise ValueError(f"unsupported view shape {shape}: expected (D,) or (C, H, W)")


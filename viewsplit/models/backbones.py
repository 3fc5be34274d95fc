"""Per-view networks: an MLP for vector views, a conv net for image views.

* ``feature_encoder(shape, cfg)`` → ``(module, feat_dim)``: ``(B, *shape) → (B, feat_dim)``
  (no output head, so methods can put their own heads on top, e.g. one over all views).
* ``view_encoder(shape, out_dim, cfg)``: features followed by a linear head.
* ``view_decoder(shape, in_dim, cfg)``: ``(B, in_dim) → (B, *shape)``, linear output.

Image views use either a small stride-2 conv net (``image: conv``, fast on CPU) or MRDD's
reference VQGAN-style ResNet (``image: resnet``, :mod:`viewsplit.models.resnet`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..typed import check_choice, check_positive, check_range
from .resnet import Decoder, Encoder, downsample_factor


@dataclass
class BackboneConfig:
    """Sizes of the per-view networks (``model.backbone.*`` and similar keys)."""

    #: hidden widths of the MLP used for vector views
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    #: BatchNorm after each hidden MLP layer
    norm: bool = True
    #: dropout after each hidden MLP layer
    dropout: float = 0.0
    #: image network: ``conv`` (small, fast), ``resnet`` (MRDD's reference architecture) or ``mlp``
    #: (the MLP above on flattened pixels)
    image: str = "conv"
    #: ``conv``: channels of its stride-2 stages, and their normalisation: ``batch`` (BatchNorm),
    #: ``layer`` (GroupNorm with one group: per-sample statistics, so masked or missing inputs in a
    #: batch do not shift the statistics used for unmasked ones) or ``none``
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    conv_norm: str = "batch"
    #: ``resnet``: base width, width multipliers per level, ResBlocks per level, latent channels
    res_hidden: int = 16
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 4])
    res_blocks: int = 3
    latent_ch: int = 8
    #: ``resnet``: recompute ResBlocks in the backward pass (less memory, ~30 % more compute)
    checkpoint: bool = False

    def validate(self, key: str) -> None:
        for i, h in enumerate(self.hidden):
            check_positive(h, f"{key}.hidden[{i}]")
        check_choice(self.image, ("conv", "resnet", "mlp"), f"{key}.image")
        check_choice(self.conv_norm, ("batch", "layer", "none"), f"{key}.conv_norm")
        if not self.channels or not self.ch_mult:
            raise ConfigError(f"{key}.channels / {key}.ch_mult: need at least one stage, got {self.channels} / "
                              f"{self.ch_mult}")
        for name in ("res_hidden", "res_blocks", "latent_ch"):
            check_positive(getattr(self, name), f"{key}.{name}")
        check_range(self.dropout, f"{key}.dropout", 0.0, 1.0)


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


def _norm2d(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    return nn.GroupNorm(1, c) if kind == "layer" else nn.Identity()


def _conv_block(cin: int, cout: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=norm == "none"), _norm2d(norm, cout),
                         nn.ReLU(inplace=True))


def _sizes(h: int, w: int, n: int) -> list[tuple[int, int]]:
    out = [(h, w)]
    for _ in range(n):
        h, w = (h + 1) // 2, (w + 1) // 2
        out.append((h, w))
    return out


class ConvDecoder(nn.Module):
    """Linear → stride-2 transposed convs (4×4; BN, ReLU between them) → image; mirrors the conv encoder.

    Each transposed conv doubles the size; the output is cropped wherever the encoder rounded up
    (e.g. 28 → 14 → 7 → 4 decodes as 4 → 7 → 14 → 28).
    """

    def __init__(self, shape: tuple[int, int, int], channels: list[int], in_dim: int, norm: str = "batch"):
        super().__init__()
        c, h, w = shape
        self.sizes = _sizes(h, w, len(channels))[::-1]  # bottleneck first, image size last
        rev = list(reversed(channels))
        self.start = (rev[0], *self.sizes[0])
        self.fc = nn.Linear(in_dim, rev[0] * self.sizes[0][0] * self.sizes[0][1])
        outs = [*rev[1:], c]
        self.stages = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=i == len(rev) - 1)
                                    for i, (a, b) in enumerate(zip(rev, outs)))
        self.norms = nn.ModuleList(_norm2d(norm, b) for b in outs[:-1])

    def forward(self, z: Tensor) -> Tensor:
        x = F.relu(self.fc(z)).view(z.shape[0], *self.start)
        for i, (stage, (h, w)) in enumerate(zip(self.stages, self.sizes[1:])):
            x = stage(x)[..., :h, :w]
            if i < len(self.norms):
                x = F.relu(self.norms[i](x))
        return x


def _resnet_grid(shape: tuple[int, ...], cfg: BackboneConfig) -> int:
    f = downsample_factor(cfg.ch_mult)
    if shape[1] % f or shape[2] % f:
        raise ValueError(f"image size {shape[1]}×{shape[2]} is not divisible by 2^(len(ch_mult)−1) = {f}")
    return (shape[1] // f) * (shape[2] // f)


def feature_encoder(shape: tuple[int, ...], cfg: BackboneConfig) -> tuple[nn.Module, int]:
    """The view's feature extractor and its output width."""
    if len(shape) == 1:
        if not cfg.hidden:
            return nn.Identity(), shape[0]
        return mlp([shape[0], *cfg.hidden], norm=cfg.norm, dropout=cfg.dropout, last_act=True), cfg.hidden[-1]
    if len(shape) != 3:
        raise ValueError(f"unsupported view shape {shape}: expected (D,) or (C, H, W)")
    if cfg.image == "mlp":
        enc, dim = feature_encoder((math.prod(shape),), cfg)
        return nn.Sequential(nn.Flatten(), enc), dim
    if cfg.image == "resnet":
        enc = Encoder(shape[0], cfg.res_hidden, cfg.ch_mult, cfg.res_blocks, cfg.latent_ch, cfg.checkpoint)
        return nn.Sequential(enc, nn.Flatten()), cfg.latent_ch * _resnet_grid(shape, cfg)
    stages, cin = [], shape[0]
    for cout in cfg.channels:
        stages.append(_conv_block(cin, cout, 2, cfg.conv_norm))
        cin = cout
    fh, fw = _sizes(shape[1], shape[2], len(cfg.channels))[-1]
    return nn.Sequential(*stages, nn.Flatten()), cin * fh * fw


def view_encoder(shape: tuple[int, ...], out_dim: int, cfg: BackboneConfig) -> nn.Module:
    features, dim = feature_encoder(shape, cfg)
    return nn.Sequential(features, nn.Linear(dim, out_dim))


def view_decoder(shape: tuple[int, ...], in_dim: int, cfg: BackboneConfig) -> nn.Module:
    if len(shape) == 1:
        return mlp([in_dim, *reversed(cfg.hidden), shape[0]], norm=cfg.norm, dropout=cfg.dropout)
    if len(shape) != 3:
        raise ValueError(f"unsupported view shape {shape}: expected (D,) or (C, H, W)")
    if cfg.image == "mlp":
        return nn.Sequential(view_decoder((math.prod(shape),), in_dim, cfg), nn.Unflatten(1, tuple(shape)))
    if cfg.image == "resnet":
        f = downsample_factor(cfg.ch_mult)
        grid = (shape[1] // f, shape[2] // f)
        _resnet_grid(shape, cfg)
        return nn.Sequential(nn.Linear(in_dim, cfg.latent_ch * grid[0] * grid[1]),
                             nn.Unflatten(1, (cfg.latent_ch, *grid)),
                             Decoder(shape[0], cfg.res_hidden, cfg.ch_mult, cfg.res_blocks, cfg.latent_ch,
                                     cfg.checkpoint))
    return ConvDecoder(shape, cfg.channels, in_dim, cfg.conv_norm)

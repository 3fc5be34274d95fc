"""The VQGAN-style convolutional encoder/decoder of MRDD's reference code (docs/methods.md#mrdd-backbone).

ResBlock = BN → swish → conv3×3 → BN → swish → conv3×3 (+ 1×1 skip when widths differ),
BatchNorm with eps 1e-6; ``len(ch_mult) − 1`` stride-2 downsamplings (zero-pad right/bottom,
3×3 conv, stride 2); no attention and no output activation.  ``Encoder`` maps
``(B, C, H, W)`` to ``(B, latent_ch, H/2^L, W/2^L)``; ``Decoder`` mirrors it.

Implementation notes (same function as the reference, computed faster on CPU): swish is
``F.silu`` (one fused kernel instead of ``x * sigmoid(x)``), and ``checkpoint=True`` recomputes
each ResBlock in the backward pass so that large batches fit in memory.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as grad_checkpoint


def _norm(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Blocks(nn.Module):
    """A sequence of layers, optionally recomputed in the backward pass block by block."""

    def __init__(self, layers: list[nn.Module], checkpoint: bool):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.checkpoint = checkpoint

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            if self.checkpoint and self.training and x.requires_grad:
                x = grad_checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x


def downsample_factor(ch_mult: list[int]) -> int:
    return 2 ** (len(ch_mult) - 1)


class Encoder(nn.Module):
    def __init__(self, in_ch: int, hidden: int, ch_mult: list[int], res_blocks: int, latent_ch: int,
                 checkpoint: bool = False):
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, hidden, 3, 1, 1)
        layers: list[nn.Module] = []
        width = hidden
        for level, mult in enumerate(ch_mult):
            for _ in range(res_blocks):
                layers.append(ResBlock(width, hidden * mult))
                width = hidden * mult
            if level != len(ch_mult) - 1:
                layers.append(Downsample(width))
        layers += [ResBlock(width, width), ResBlock(width, width)]
        self.body = _Blocks(layers, checkpoint)
        self.norm_out = _norm(width)
        self.conv_out = nn.Conv2d(width, latent_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(F.silu(self.norm_out(self.body(self.conv_in(x)))))


class Decoder(nn.Module):
    def __init__(self, out_ch: int, hidden: int, ch_mult: list[int], res_blocks: int, latent_ch: int,
                 checkpoint: bool = False):
        super().__init__()
        width = hidden * ch_mult[-1]
        self.conv_in = nn.Conv2d(latent_ch, width, 3, 1, 1)
        layers: list[nn.Module] = [ResBlock(width, width), ResBlock(width, width)]
        for level in reversed(range(len(ch_mult))):
            for _ in range(res_blocks + 1):
                layers.append(ResBlock(width, hidden * ch_mult[level]))
                width = hidden * ch_mult[level]
            if level != 0:
                layers.append(Upsample(width))
        self.body = _Blocks(layers, checkpoint)
        self.norm_out = _norm(width)
        self.conv_out = nn.Conv2d(width, out_ch, 3, 1, 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.conv_out(F.silu(self.norm_out(self.body(self.conv_in(z)))))

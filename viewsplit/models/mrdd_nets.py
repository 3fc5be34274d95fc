"""MRDD's networks (docs/methods.md#mrdd-stage-1): the stage-1 consistency VAE and the stage-2 specific VAEs."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .backbones import BackboneConfig, feature_encoder, view_decoder
from .present import apply_present
from .stochastic import GaussianSample


class ConsistencyAE(nn.Module):
    """Stage 1: shared encoders (one per distinct view shape), fc_z over all views, per-view decoders."""

    def __init__(self, view_shapes: list[tuple[int, ...]], c_dim: int, cfg: BackboneConfig):
        super().__init__()
        shapes = [tuple(s) for s in view_shapes]
        self.groups = [[v for v, s in enumerate(shapes) if s == shape] for shape in dict.fromkeys(shapes)]
        encs, dims = [], []
        for group in self.groups:
            enc, dim = feature_encoder(shapes[group[0]], cfg)
            encs.append(enc)
            dims.append(dim)
        self.encoders = nn.ModuleList(encs)
        self.feat_dims = [dims[g] for v in range(len(shapes)) for g, grp in enumerate(self.groups) if v in grp]
        self.fc_z = nn.Linear(sum(self.feat_dims), 2 * c_dim)
        self.decoders = nn.ModuleList(view_decoder(s, c_dim, cfg) for s in shapes)
        self.sample = GaussianSample()

    def features(self, views: list[Tensor], mask: Tensor) -> list[Tensor]:
        """Per-view features; views sharing an encoder run through it as one batch."""
        feats: dict[int, Tensor] = {}
        for enc, group in zip(self.encoders, self.groups):
            x = torch.cat([views[v] for v in group])
            present = torch.cat([mask[:, v] for v in group])
            for v, f in zip(group, apply_present(enc, x, present).chunk(len(group))):
                feats[v] = f
        return [feats[v] for v in range(len(views))]

    def posterior(self, views: list[Tensor], mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.fc_z(torch.cat(self.features(views, mask), 1)).chunk(2, dim=1)


class SpecificVAE(nn.Module):
    """Stage 2, one view: encoder → (μ_v, logvar_v); decoder from [s_v, c]."""

    def __init__(self, shape: tuple[int, ...], v_dim: int, c_dim: int, cfg: BackboneConfig):
        super().__init__()
        enc, dim = feature_encoder(shape, cfg)
        self.encoder = nn.Sequential(enc, nn.Linear(dim, 2 * v_dim))
        self.decoder = view_decoder(shape, v_dim + c_dim, cfg)
        self.sample = GaussianSample()

    def posterior(self, x: Tensor, present: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(μ_v, logvar_v) of ``x``; with ``present``, of its present rows only and zeros elsewhere."""
        out = self.encoder(x) if present is None else apply_present(self.encoder, x, present)
        mu, logvar = out.chunk(2, dim=1)
        return mu, logvar

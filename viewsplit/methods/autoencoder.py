"""Multi-view autoencoder baseline: per-view encoders, one fused code, per-view decoders.

    h_v = Enc_v(x_v) ∈ R^d,   c = Σ_v m_v h_v / Σ_v m_v   (mean over the available views)
    x̂_v = Dec_v(c),           L = Σ_v mean_{b: m_bv} ‖x_v − x̂_v‖² / D_v

MLP encoders for vector views, a small conv net for image views.  The fused code is the
consistent representation ``C``; there are no view-specific codes.

Missing views (``batch.mask``, m_v above): an absent view never reaches its encoder, the fused
code averages the available views only, and view v's reconstruction term uses only the samples
where v is present (every view is still decoded from c, but absent ones are not scored).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.multiview import Batch
from ..losses import masked_view_mse
from ..models.backbones import BackboneConfig, view_decoder, view_encoder
from ..typed import check_positive
from .base import DataSpec, Method, Stage, StageDefaults, Step, apply_each, register_method


@dataclass
class AutoencoderConfig:
    code_dim: int = 32
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def validate(self) -> None:
        check_positive(self.code_dim, "model.code_dim")
        self.backbone.validate("model.backbone")


@register_method
class MultiViewAutoencoder(Method):
    name = "autoencoder"
    Config = AutoencoderConfig
    stage_defaults: ClassVar[StageDefaults] = {
        "train": {"epochs": 30, "batch_size": 128, "lr": 1e-3, "weight_decay": 1e-4}}

    def __init__(self, cfg: AutoencoderConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.encoders = nn.ModuleList(view_encoder(s, cfg.code_dim, cfg.backbone) for s in spec.view_shapes)
        self.decoders = nn.ModuleList(view_decoder(s, cfg.code_dim, cfg.backbone) for s in spec.view_shapes)

    def fuse(self, views: list[Tensor], mask: Tensor) -> Tensor:
        """Mean of the available views' codes; a missing view never reaches its encoder."""
        total = sum(apply_each(self.encoders, views, mask), torch.zeros(()))
        return total / mask.sum(1, keepdim=True).to(total.dtype)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        c = self.fuse(batch.views, batch.mask)
        recon = masked_view_mse(batch.views, [dec(c) for dec in self.decoders], batch.mask)
        return {"objective": recon, "reconstruction": recon.detach()}

    def stage(self, name: str) -> Stage:
        return Stage(name, [Step("model", [self.encoders, self.decoders], self.loss)])

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        return {"C": self.fuse(views, self.resolve_mask(views, mask))}

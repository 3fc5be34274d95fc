"""Deep CCA (Andrew, Arora, Bilmes, Livescu, ICML 2013; docs/methods.md#dcca).

Per view an encoder H_v = Enc_v(x_v) ∈ R^k, trained by one optimiser on::

    L = −corr(H_1, H_2)        (:class:`~viewsplit.losses.DCCALoss`: Cholesky whitening, float64)

with corr the sum of the (top-K) canonical correlations (``trace``) or of their squares
(``squared``).  V > 2 views: the mean (``pairs: mean``) or sum over view pairs (viewsplit).  The
batch must hold more samples than k (else :class:`~viewsplit.losses.BatchTooSmallError`).

Each encoder ends with BatchNorm1d(affine=False); the loss is invariant to it (an invertible
per-dimension affine map) but the representations then share one scale for k-means and probes.

Representations: ``Z_<v>`` = H_v and ``Z_cat`` = their concatenation (docs/evaluation.md#representations); a missing
view never reaches its encoder and its H_v is zeros.  The loss pairs views on the samples where
both are present (:meth:`DCCALoss.forward`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.multiview import Batch
from ..errors import ConfigError
from ..losses import DCCALoss
from ..losses.dcca import VARIANTS
from ..models.backbones import BackboneConfig
from ..typed import check_choice, check_positive
from .base import DataSpec, Method, Stage, StageDefaults, Step, apply_each, register_method
from .softcca import normed_encoder


@dataclass
class DCCAConfig:
    #: k, each view's output size (the batch must be larger)
    out_dim: int = 10
    #: ridge r added to the views' covariances
    eps: float = 1e-5
    #: ``trace`` (Σ σ_i, Andrew-style) or ``squared`` (Σ σ_i², cca_zoo HEAD)
    variant: str = "trace"
    #: use only the K largest canonical correlations; null = all k
    top_k: int | None = None
    #: V > 2: ``mean`` or ``sum`` over view pairs
    pairs: str = "mean"
    #: under DDP, compute the loss on the global batch (autograd-aware all_gather)
    gather_distributed: bool = True
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def validate(self) -> None:
        check_positive(self.out_dim, "model.out_dim")
        check_positive(self.eps, "model.eps", allow_zero=True)
        check_choice(self.variant, VARIANTS, "model.variant")
        check_choice(self.pairs, ("mean", "sum"), "model.pairs")
        if self.top_k is not None and not 1 <= self.top_k <= self.out_dim:
            raise ConfigError(f"model.top_k: must lie in [1, model.out_dim = {self.out_dim}] or be null, "
                              f"got {self.top_k}")
        self.backbone.validate("model.backbone")


@register_method
class DCCA(Method):
    name = "dcca"
    Config = DCCAConfig
    stage_defaults: ClassVar[StageDefaults] = {
        "train": {"optimizer": "adam", "lr": 1e-3, "epochs": 50, "batch_size": 256}}

    def __init__(self, cfg: DCCAConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.encoders = nn.ModuleList(normed_encoder(s, cfg.out_dim, cfg.backbone) for s in spec.view_shapes)
        self.objective = DCCALoss(cfg.eps, cfg.variant, cfg.top_k, cfg.pairs, cfg.gather_distributed)

    def project(self, views: list[Tensor], mask: Tensor) -> list[Tensor]:
        """H_v for every view; zeros where the view is missing (it never reaches its encoder)."""
        return apply_each(self.encoders, views, mask)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        loss = self.objective(*self.project(batch.views, batch.mask), mask=batch.mask)
        return {"objective": loss, "correlation": -loss.detach()}

    def stage(self, name: str) -> Stage:
        return Stage(name, [Step("model", [self.encoders], self.loss)])

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        zs = self.project(views, self.resolve_mask(views, mask))
        return {**{f"Z_{v}": z for v, z in enumerate(zs)}, "Z_cat": torch.cat(zs, 1)}

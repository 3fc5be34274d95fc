"""Soft CCA (Chang, Xiang, Hospedales, CVPR 2018, arXiv 1707.09669; docs/methods.md#sdl-soft-cca-and-fae).

Per view an encoder with a BatchNorm1d(affine=False) output, Z_v = BN(Enc_v(x_v)) ∈ R^k, and::

    L = mean_{v<w} align(Z̃_v, Z̃_w) + λ Σ_v SDL(Z_v)        (:class:`~viewsplit.losses.SoftCCALoss`)

with align = MSE (default) or ``fro``, and SDL with the paper's running covariance (decay α).
Two views give the paper's objective; V > 2 averages the alignment over view pairs (viewsplit).
``align_dim`` (viewsplit option, off by default) aligns only the first coordinates and leaves the
others to SDL alone, the analogue of DCCA's top-K correlations.
``contrast`` (viewsplit option, off by default; 5 in the vector preset) adds
``contrast`` · mean_{v<w} NN-InfoNCE(Z_v[:, :a], Z_w[:, :a]) over the aligned coordinates (a = ``align_dim``):
the two-positive form of :func:`~viewsplit.losses.neighbour_info_nce` with neighbours chosen by the inputs
(:func:`~viewsplit.losses.input_neighbour_contrast`), as MRDD's stage 1 in its vector preset.  Alignment and SDL
alone leave the classes loose (k-means of Z_cat below the inputs or a linear (G)CCA on the digit sets and all six
Handwritten views); not in the paper (docs/methods.md#sdl-soft-cca-and-fae).
Defaults are library choices, not paper values (the paper's are unknown): α = 0.2, λ = 0.5 with
``reduction: mean``, Adam lr 1e-3.

This is also cca_zoo's ``DCCA_SDL`` (the same objective there, with per-batch SDL); viewsplit
registers no separate name for it.  The encoders' BN output mirrors cca_zoo: in eval mode the
representations use its running statistics.  The loss standardises again with the batch's
statistics, a no-op up to eps in one process and the global batch's statistics under DDP.

Representations: ``Z_<v>`` = each view's projection, ``Z_cat`` = their concatenation
(docs/evaluation.md#representations).  Missing views never reach their encoder: a missing Z_v is zeros (also inside
Z_cat); the loss uses for each view only the samples where it is present and aligns a pair on the
samples where both are (details in :class:`~viewsplit.losses.SoftCCALoss`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn

from ..data.multiview import Batch
from ..errors import ConfigError
from ..losses import SoftCCALoss
from ..losses.sdl import ALIGNMENTS, REDUCTIONS
from ..models.backbones import BackboneConfig, view_encoder
from ..typed import check_choice, check_positive
from .base import (
    DataSpec,
    Method,
    Stage,
    StageDefaults,
    Step,
    add_contrast,
    apply_each,
    check_contrast_keys,
    register_method,
)


class SDLKeys(Protocol):
    """The SDL settings Soft CCA's and the factorisation autoencoder's configs share."""

    alpha: float
    reduction: str
    align: str
    eps: float


def check_sdl_keys(cfg: SDLKeys, prefix: str = "model") -> None:
    """Validate the SDL keys shared by Soft CCA and the factorisation autoencoder."""
    if not 0.0 <= cfg.alpha < 1.0:
        raise ConfigError(f"{prefix}.alpha: must lie in [0, 1), got {cfg.alpha}")
    check_choice(cfg.reduction, REDUCTIONS, f"{prefix}.reduction")
    check_choice(cfg.align, ALIGNMENTS, f"{prefix}.align")
    check_positive(cfg.eps, f"{prefix}.eps", allow_zero=True)


def normed_encoder(shape: tuple[int, ...], out_dim: int, cfg: BackboneConfig) -> nn.Sequential:
    """The view's encoder followed by BatchNorm1d(out_dim, affine=False)."""
    return nn.Sequential(view_encoder(shape, out_dim, cfg), nn.BatchNorm1d(out_dim, affine=False))


@dataclass
class SoftCCAConfig:
    #: k, each view's projection size
    out_dim: int = 10
    #: λ (SDL weight), α (running-covariance decay), SDL reduction ``mean`` or ``sum``
    lam: float = 0.5
    alpha: float = 0.2
    reduction: str = "mean"
    #: alignment ``mse`` (‖·‖²_F / (m k)) or ``fro`` (‖·‖²_F)
    align: str = "mse"
    #: align only the first ``align_dim`` coordinates (the analogue of DCCA's top_k; SDL still
    #: covers all out_dim); null = all
    align_dim: int | None = None
    #: weight of the input-neighbour contrast of the aligned coordinates (module docstring; 0 = off) and its
    #: temperature
    contrast: float = 0.0
    contrast_temperature: float = 0.5
    #: BatchNorm epsilon of the loss's standardisation
    eps: float = 1e-5
    #: ``false`` = per-batch SDL (cca_zoo HEAD, defect S1 reproduced on request)
    running: bool = True
    #: under DDP, compute the loss on the global batch (autograd-aware all_gather)
    gather_distributed: bool = True
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def validate(self) -> None:
        check_positive(self.out_dim, "model.out_dim")
        check_positive(self.lam, "model.lam", allow_zero=True)
        if self.align_dim is not None and not 1 <= self.align_dim <= self.out_dim:
            raise ConfigError(f"model.align_dim: must lie in [1, model.out_dim = {self.out_dim}] or be null, "
                              f"got {self.align_dim}")
        check_sdl_keys(self)
        check_contrast_keys(self)
        self.backbone.validate("model.backbone")


@register_method
class SoftCCA(Method):
    name = "softcca"
    Config = SoftCCAConfig
    stage_defaults: ClassVar[StageDefaults] = {
        "train": {"optimizer": "adam", "lr": 1e-3, "epochs": 50, "batch_size": 256}}

    def __init__(self, cfg: SoftCCAConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        self.encoders = nn.ModuleList(normed_encoder(s, cfg.out_dim, cfg.backbone) for s in spec.view_shapes)
        self.objective = SoftCCALoss(cfg.out_dim, spec.n_views, cfg.lam, cfg.alpha, cfg.reduction, cfg.align,
                                     cfg.eps, cfg.running, cfg.gather_distributed, cfg.align_dim)

    def project(self, views: list[Tensor], mask: Tensor) -> list[Tensor]:
        """Z_v for every view; zeros where the view is missing (it never reaches its encoder)."""
        return apply_each(self.encoders, views, mask)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        zs = self.project(batch.views, batch.mask)
        out = self.objective(zs, batch.mask)
        terms = {"objective": out["objective"], "align": out["align"].detach(), "sdl": out["sdl"].detach()}
        a = self.cfg.align_dim or self.cfg.out_dim
        return add_contrast(terms, [z[:, :a] for z in zs], batch, self.cfg)

    def stage(self, name: str) -> Stage:
        # the loss module holds the SDL state: kept in train mode so that it advances
        return Stage(name, [Step("model", [self.encoders], self.loss)], train_modules=[self.objective])

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        zs = self.project(views, self.resolve_mask(views, mask))
        return {**{f"Z_{v}": z for v, z in enumerate(zs)}, "Z_cat": torch.cat(zs, 1)}

"""Factorisation autoencoder with SDL (docs/methods.md#sdl-soft-cca-and-fae; viewsplit design, the SDL paper's exact FAE
formulation is unverified).

Per view an encoder with a BatchNorm1d(affine=False) output gives the code [s_v ; p_v] (shared
s_v ∈ R^{k_s}, private p_v ∈ R^{k_p}) and a decoder reconstructs x_v from it::

    L = Σ_v rec(x_v, Dec_v([s_v ; p_v]))
        + λ_align · mean_{v<w} MSE(BN(s_v), BN(s_w)) + λ_sdl · Σ_v SDL([s_v ; p_v])
        [+ contrast · mean_{v<w} NN-InfoNCE(s_v, s_w)]

rec is the per-element MSE averaged over the samples where the view is present; SDL (paper form,
running covariance) on the whole code penalises every cross-covariance inside it, in particular
the shared–private ones ("decorrelation for latent factor disentanglement").  The optional last term
(``contrast``, 0 by default, 5 at temperature 1 in the vector preset) is Soft CCA's input-neighbour contrast
(:func:`~viewsplit.losses.input_neighbour_contrast`) on the shared codes: it draws samples with alike inputs together
in C, where alignment alone left the classes loose (docs/methods.md#sdl-soft-cca-and-fae).  k_p = 0 with the
reconstruction dropped is Soft CCA.  The alignment and SDL terms are
:class:`~viewsplit.losses.SoftCCALoss` with ``align_dim = k_s`` (missing views handled there).

Representations: ``C`` = mean of s_v over the views available for the sample (the codes are BN
outputs, so the views' shared codes share one scale), ``V_<v>`` = p_v (zeros where view v is
missing; not exposed when k_p = 0).  :meth:`FactorisationAE.predict` reconstructs every view:
an available view from its own code, a missing one from [C ; 0] (0 = the mean of a BN output).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.multiview import Batch
from ..losses import SoftCCALoss, masked_view_mse
from ..models.backbones import BackboneConfig, view_decoder
from ..typed import check_positive
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
from .softcca import check_sdl_keys, normed_encoder


@dataclass
class FAEConfig:
    #: k_s (shared) and k_p (private, may be 0) code sizes
    shared_dim: int = 10
    private_dim: int = 10
    #: weights of the shared-code alignment and of SDL
    lam_align: float = 1.0
    lam_sdl: float = 0.5
    #: SDL decay α and reduction; alignment ``mse`` or ``fro``; BN epsilon of the loss
    alpha: float = 0.2
    reduction: str = "mean"
    align: str = "mse"
    eps: float = 1e-5
    #: ``false`` = per-batch SDL (cca_zoo HEAD)
    running: bool = True
    #: weight of the input-neighbour contrast of the shared codes s_v (as Soft CCA's; 0 = off) and its temperature
    contrast: float = 0.0
    contrast_temperature: float = 0.5
    #: under DDP, compute alignment and SDL on the global batch (autograd-aware all_gather)
    gather_distributed: bool = True
    backbone: BackboneConfig = field(default_factory=BackboneConfig)

    def validate(self) -> None:
        check_positive(self.shared_dim, "model.shared_dim")
        check_positive(self.private_dim, "model.private_dim", allow_zero=True)
        check_positive(self.lam_align, "model.lam_align", allow_zero=True)
        check_positive(self.lam_sdl, "model.lam_sdl", allow_zero=True)
        check_sdl_keys(self)
        check_contrast_keys(self)
        self.backbone.validate("model.backbone")


@register_method
class FactorisationAE(Method):
    name = "fae"
    Config = FAEConfig
    stage_defaults: ClassVar[StageDefaults] = {
        "train": {"optimizer": "adam", "lr": 1e-3, "epochs": 50, "batch_size": 256}}

    def __init__(self, cfg: FAEConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        dim = cfg.shared_dim + cfg.private_dim
        self.encoders = nn.ModuleList(normed_encoder(s, dim, cfg.backbone) for s in spec.view_shapes)
        self.decoders = nn.ModuleList(view_decoder(s, dim, cfg.backbone) for s in spec.view_shapes)
        self.objective = SoftCCALoss(dim, spec.n_views, cfg.lam_sdl, cfg.alpha, cfg.reduction, cfg.align, cfg.eps,
                                     cfg.running, cfg.gather_distributed, align_dim=cfg.shared_dim)

    def codes(self, views: list[Tensor], mask: Tensor) -> list[Tensor]:
        """[s_v ; p_v] per view; zeros where the view is missing (it never reaches its encoder)."""
        return apply_each(self.encoders, views, mask)

    def shared(self, codes: list[Tensor], mask: Tensor) -> Tensor:
        """C = mean of s_v over the available views (missing codes are zeros)."""
        total = sum((c[:, : self.cfg.shared_dim] for c in codes), torch.zeros(()))
        return total / mask.sum(1, keepdim=True).to(total.dtype)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        cfg, mask = self.cfg, batch.mask
        codes = self.codes(batch.views, mask)
        x_hats = apply_each(self.decoders, codes, mask)
        recon = masked_view_mse(batch.views, x_hats, mask)
        terms = self.objective(codes, mask)
        total = recon + cfg.lam_align * terms["align"] + cfg.lam_sdl * terms["sdl"]
        out = {"objective": total, "reconstruction": recon.detach(), "align": terms["align"].detach(),
               "sdl": terms["sdl"].detach()}
        return add_contrast(out, [c[:, :cfg.shared_dim] for c in codes], batch, cfg)

    def stage(self, name: str) -> Stage:
        # the loss module holds the SDL state: kept in train mode so that it advances
        return Stage(name, [Step("model", [self.encoders, self.decoders], self.loss)], train_modules=[self.objective])

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        mask = self.resolve_mask(views, mask)
        codes = self.codes(views, mask)
        out = {"C": self.shared(codes, mask)}
        if self.cfg.private_dim:
            out.update({f"V_{v}": c[:, self.cfg.shared_dim:] for v, c in enumerate(codes)})
        return out

    @torch.no_grad()
    def predict(self, views: list[Tensor], mask: Tensor | None = None) -> list[Tensor]:
        """Reconstruct every view: x̂_v = Dec_v([s_v ; p_v]) where view v is available, Dec_v([C ; 0])
        where it is missing (C from the available views, 0 = the private code's mean)."""
        mask = self.resolve_mask(views, mask)
        codes = self.codes(views, mask)
        c = self.shared(codes, mask)
        fill = torch.cat([c, c.new_zeros(c.shape[0], self.cfg.private_dim)], 1)
        return [dec(torch.where(mask[:, v : v + 1], code, fill)) for v, (dec, code) in
                enumerate(zip(self.decoders, codes))]

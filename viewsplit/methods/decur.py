"""DeCUR: decoupling common and unique representations (Wang et al., ECCV 2024, arXiv 2309.05300).

Per view v: a backbone f_v and a projector g_v ([Linear(no bias) → BN → ReLU] × n, then
Linear(no bias)), z_v^a = g_v(f_v(aug_a(x_v))) ∈ R^K for two random augmentations a ∈ {1, 2}.
One optimiser step minimises (docs/methods.md#decur; :mod:`viewsplit.losses.decur`)::

    L = (2 · mean_v L_BT(Ĉ(z_v¹, z_v²)) + mean_{v<w} (L_com + L_uni)(Ĉ(z_v¹, z_w¹)) / 2) / 3

which is the paper's (L_M1 + L_M2 + (L_com + L_uni)/2)/3 for two views.  Dims 0..K_c−1 of z are
common (K_c = round(common_fraction · K)), the rest unique.  ``common_fraction: 1.0`` is the
Barlow-Twins-without-split baseline (configs/handwritten/barlow.yaml).

Representations (``encode``, eval mode):

* ``B_<v>`` = f_v(x_v), view v's backbone features (the reference's evaluation; projector
  discarded) and ``B_cat`` = their concatenation (late fusion; zeros for missing views);
* ``C`` = mean over the available views of the common dims of ẑ_v, where ẑ_v is the projector
  output standardised per dimension with its mean/std over the clean training data (computed
  at the end of training and stored as buffers; the loss is invariant to a per-dim positive
  affine map of z, so only the standardised z is comparable across views);
* ``V_<v>`` = the unique dims of ẑ_v (zeros where view v is missing); absent when K_c = K.

Deviations from the reference code (all deliberate):

* One projector per view (X1); ``share_projector: true`` reproduces the shared one.
* Ĉ over the global batch with the true N through an autograd-aware gather (X2).
* The optimiser is the stage's ``optimizer`` (default AdamW, X3); biases and norm parameters
  (ndim = 1) form a second group without weight decay and with lr × ``bias_lr_scale`` (the
  reference's lr_biases / lr_weights).  LARS is not offered.
* BN layers inside backbones and projectors use per-rank statistics under DDP (the reference
  converts them to SyncBN); only the loss's BN(·) and Ĉ are global.
* The augmentations of the cross-view pair are independent (as in the reference, X8);
  ``aligned_crops: true`` draws the same random parameters for every view's first augmentation.
* V > 2 views and missing views: see :mod:`viewsplit.losses.decur`; an absent view never
  reaches its networks (``apply_present``), its intra-view term uses the samples where it is
  present and a cross-view term those where both views are.
* Backbones are viewsplit's per-view networks (MLP for vectors, ``image: conv|resnet`` for
  images), randomly initialised (no pretrained weights, X7); augmentations are
  :func:`viewsplit.data.augment.augment` (affine + pixel corruption for images, Gaussian noise
  + feature dropout for vectors), not the reference's crops, flips and seasons.
* No AMP GradScaler (``train.precision: bf16`` is the engine's option); Ĉ is computed in fp32.
* ``contrast`` (viewsplit option, 0 by default, 5 in the vector preset) adds ``contrast`` · the input-neighbour
  InfoNCE of the first augmentations' common dims, z_v¹[:, :K_c], averaged over view pairs
  (:func:`~viewsplit.losses.input_neighbour_contrast`, as Soft CCA's): the cross-correlation terms make the views
  agree dim by dim but do not draw a class together, and C clustered below the cheap baselines on small sets
  (docs/methods.md#decur).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..data.augment import AugmentConfig, augment
from ..data.multiview import Batch, MultiViewDataset
from ..errors import ConfigError
from ..losses import decur_loss
from ..models.backbones import BackboneConfig, feature_encoder
from ..models.stochastic import eval_mode
from ..typed import check_positive
from .base import (
    DataSpec,
    Method,
    Stage,
    StageDefaults,
    Step,
    add_contrast,
    apply_present,
    check_contrast_keys,
    register_method,
)


@dataclass
class DeCURConfig:
    #: projector widths: hidden layers then the embedding size K (reference ``8192-8192-8192``)
    projector: list[int] = field(default_factory=lambda: [512, 512, 512])
    #: K_c / K (reference: 0.875 SAR–optical, 0.75 RGB–DEM); 1.0 = Barlow Twins without the split
    common_fraction: float = 0.75
    #: off-diagonal weight λ
    lam: float = 0.0051
    #: eps of the loss's BN(·)
    bn_eps: float = 1e-5
    #: one projector for all views (defect X1 of the reference); needs equal backbone widths
    share_projector: bool = False
    #: the first augmentations of all views use the same random parameters (X8; default independent)
    aligned_crops: bool = False
    #: Ĉ over the global batch under DDP (autograd-aware gather, true global N)
    gather_distributed: bool = True
    #: learning-rate multiplier of the biases/norms group (reference lr_b / lr_w, e.g. 0.0048 / 0.2)
    bias_lr_scale: float = 1.0
    #: weight of the input-neighbour contrast of the common dims (module docstring; 0 = off) and its temperature
    contrast: float = 0.0
    contrast_temperature: float = 0.5
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @property
    def embed_dim(self) -> int:
        return self.projector[-1]

    @property
    def n_common(self) -> int:
        return round(self.common_fraction * self.embed_dim)

    def validate(self) -> None:
        if not self.projector:
            raise ConfigError("model.projector: needs at least the embedding size, e.g. [512, 512, 512]")
        for i, h in enumerate(self.projector):
            check_positive(h, f"model.projector[{i}]")
        if not 0.0 < self.common_fraction <= 1.0 or self.n_common < 1:
            raise ConfigError(f"model.common_fraction: must lie in (0, 1] and give at least one common dim "
                              f"(K = {self.embed_dim}), got {self.common_fraction}")
        check_positive(self.lam, "model.lam", allow_zero=True)
        check_positive(self.bn_eps, "model.bn_eps", allow_zero=True)
        check_positive(self.bias_lr_scale, "model.bias_lr_scale")
        check_contrast_keys(self)
        self.backbone.validate("model.backbone")
        self.augment.validate("model.augment")


def projector(in_dim: int, sizes: list[int]) -> nn.Sequential:
    """[Linear(no bias) → BatchNorm1d → ReLU] per hidden width, then Linear(no bias) (reference projector)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *sizes]
    for a, b in itertools.pairwise(dims[:-1]):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
    return nn.Sequential(*layers)


def weight_decay_groups(modules: list[nn.Module], bias_lr_scale: float = 1.0) -> list[dict]:
    """Weights (ndim > 1) keep the stage's weight decay; biases and norm parameters (ndim = 1) get none
    and lr × ``bias_lr_scale`` (the reference's two groups, without its decay on biases/BN)."""
    seen: set[int] = set()
    weights: list[nn.Parameter] = []
    others: list[nn.Parameter] = []
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                (weights if p.ndim > 1 else others).append(p)
    return [{"params": weights}, {"params": others, "weight_decay": 0.0, "lr_scale": bias_lr_scale}]


@register_method
class DeCUR(Method):
    name = "decur"
    Config = DeCURConfig
    stage_defaults: ClassVar[StageDefaults] = {
        "train": {"optimizer": "adamw", "epochs": 100, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4,
                  "scheduler": "cosine"}}
    z_mean: Tensor
    z_std: Tensor

    def __init__(self, cfg: DeCURConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        encs, dims = zip(*(feature_encoder(s, cfg.backbone) for s in spec.view_shapes))
        self.encoders = nn.ModuleList(encs)
        if cfg.share_projector:
            if len(set(dims)) != 1:
                raise ConfigError(f"model.share_projector: the views' backbone widths differ ({list(dims)}); "
                                  "a shared projector needs equal widths")
            self.projectors = nn.ModuleList([projector(dims[0], cfg.projector)])
        else:
            self.projectors = nn.ModuleList(projector(d, cfg.projector) for d in dims)
        k = cfg.embed_dim
        # per-view mean/std of the eval-mode projector output over the clean training data
        self.register_buffer("z_mean", torch.zeros(spec.n_views, k))
        self.register_buffer("z_std", torch.ones(spec.n_views, k))

    def projector_of(self, v: int) -> nn.Module:
        return self.projectors[0 if self.cfg.share_projector else v]

    def embed(self, v: int, x: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """(h, z) = (f_v(x), g_v(f_v(x))) for the present samples, zeros elsewhere."""
        h = apply_present(self.encoders[v], x, present)
        return h, apply_present(self.projector_of(v), h, present)

    # ------------------------------------------------------------------ training
    def _augment_generators(self) -> list[torch.Generator | None]:
        """Per view, the generator of its first augmentation: one seed for all views with ``aligned_crops``."""
        if not self.cfg.aligned_crops:
            return [None] * self.spec.n_views
        seed = int(torch.randint(0, 2**62, ()))
        return [torch.Generator().manual_seed(seed) for _ in range(self.spec.n_views)]

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        """The DeCUR objective on two fresh augmentations of every view; terms logged detached."""
        cfg = self.cfg
        z1, z2 = [], []
        for v, (x, gen) in enumerate(zip(batch.views, self._augment_generators())):
            present = batch.mask[:, v]
            z1.append(self.embed(v, augment(x, cfg.augment, gen), present)[1])
            z2.append(self.embed(v, augment(x, cfg.augment), present)[1])
        terms = decur_loss(z1, z2, cfg.n_common, cfg.lam, cfg.bn_eps, batch.mask, cfg.gather_distributed)
        out = {"objective": terms["loss"], **{k: t.detach() for k, t in terms.items() if k != "loss"}}
        return add_contrast(out, [z[:, :cfg.n_common] for z in z1], batch, cfg)

    @torch.no_grad()
    def _standardisation(self, data: MultiViewDataset, device: torch.device) -> None:
        """z_mean / z_std of each view's eval-mode projector output over its present training samples."""
        sums = torch.zeros_like(self.z_mean, dtype=torch.float64)
        sq, count = torch.zeros_like(sums), torch.zeros(self.spec.n_views, 1, dtype=torch.float64, device=sums.device)
        with eval_mode(self):
            for b in data.batches(1024):
                b = b.to(device)
                for v, x in enumerate(b.views):
                    present = b.mask[:, v]
                    if bool(present.any()):
                        z = self.projector_of(v)(self.encoders[v](x[present])).double()
                        sums[v] += z.sum(0)
                        sq[v] += z.pow(2).sum(0)
                        count[v] += z.shape[0]
        mean = sums / count.clamp_min(1)
        var = (sq / count.clamp_min(1) - mean.pow(2)).clamp_min(0)
        self.z_mean.copy_(mean)
        self.z_std.copy_(torch.sqrt(var + self.cfg.bn_eps).clamp_min(1e-12))

    def stage(self, name: str) -> Stage:
        if name != "train":
            raise KeyError(name)
        step = Step("model", [self.encoders, self.projectors], self.loss,
                    param_groups=lambda mods: weight_decay_groups(mods, self.cfg.bias_lr_scale))
        return Stage(name, [step], on_end=self._standardisation)

    # ------------------------------------------------------------------ representations
    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        mask = self.resolve_mask(views, mask)
        kc = self.cfg.n_common
        out: dict[str, Tensor] = {}
        feats, common = [], []
        for v, x in enumerate(views):
            present = mask[:, v]
            h, z = self.embed(v, x, present)
            zhat = (z - self.z_mean[v]) / self.z_std[v] * present.unsqueeze(1).to(z.dtype)
            out[f"B_{v}"] = h
            feats.append(h)
            common.append(zhat[:, :kc])
            if kc < self.cfg.embed_dim:
                out[f"V_{v}"] = zhat[:, kc:]
        out["B_cat"] = torch.cat(feats, 1)
        out["C"] = sum(common) / mask.sum(1, keepdim=True).to(common[0].dtype)
        return out

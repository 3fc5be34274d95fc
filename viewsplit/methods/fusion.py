"""Concatenation fusion trained with modality drop: DMRNet's supervised baseline (docs/methods.md#dmrnet).

Per view a feature encoder f_v (``model.backbone``: MLP for vector views, conv net for images);
the fused features h = [f_1(x_1); …; f_V(x_V)] feed a deterministic embedding and a linear
classifier::

    Z = BN(W h + b),    logits = fc(Z),    L = mean_b CE(logits_b, y_b)

It is DMRNet (:mod:`viewsplit.methods.dmrnet`) without the probabilistic embedding: the same
encoders, the same embedding layer as DMRNet's μ branch, the same classifier and the same
modality drop, and cross-entropy only, so a comparison isolates DMRNet's sampling, KL and
hard-combination terms.  (The reference's own ``pme = 0`` baseline classifies h directly.)

* **Modality drop** (training only): every training sample sees a combination drawn uniformly
  among the non-empty subsets of its available views (with probability ``drop_rate``;
  :func:`~viewsplit.models.masking.modality_drop`).  Evaluation never drops (defect N2): the mask is the
  one given, e.g. a fixed combination for every test sample (docs/evaluation.md#missing-views).
* **Absent views** (``mask`` False, given or dropped) never reach their encoder
  (:func:`~viewsplit.methods.base.apply_present`); their features are zeros, DMRNet's feature
  zeroing, so their values cannot change any output.
* **Representations** (``encode``): ``Z`` = the embedding (DMRNet: its mean μ) and ``H_<v>`` =
  view v's encoder features (zeros where missing).  ``predict_logits(views, mask)`` gives the
  class scores, for accuracy per view combination.
* **Model selection**: the final epoch (the reference picks the best test epoch, defect N1).
* Default optimisation = DMRNet's reference: SGD (lr 1e-3, momentum 0.9, wd 1e-4), lr × 0.1
  every 70 epochs, 100 epochs, batch 64.  Initialisation is PyTorch's default: the reference's
  Xavier/Kaiming initialisation belongs to its ResNet-18 backbones, which viewsplit does not use.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.multiview import Batch, MultiViewDataset
from ..errors import ConfigError, DataError
from ..models.backbones import BackboneConfig, feature_encoder
from ..models.masking import modality_drop
from ..typed import check_positive
from .base import DataSpec, Method, Stage, StageDefaults, Step, apply_each, register_method

#: DMRNet's reference optimisation (CREMA-D / Kinetics-Sounds)
REFERENCE_SCHEDULE = {"optimizer": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4, "scheduler": "step",
                      "step_size": 70, "gamma": 0.1, "epochs": 100, "batch_size": 64}


@dataclass
class FusionConfig:
    #: embedding size (the reference keeps the fused width, 1024)
    z_dim: int = 256
    #: per-view feature encoders; their outputs are concatenated
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    #: probability that a training sample's view combination is redrawn (1 = the reference)
    drop_rate: float = 1.0

    def validate(self) -> None:
        check_positive(self.z_dim, "model.z_dim")
        if not 0.0 <= self.drop_rate <= 1.0:
            raise ConfigError(f"model.drop_rate: must lie in [0, 1], got {self.drop_rate}")
        self.backbone.validate("model.backbone")


def embedding_layer(in_dim: int, z_dim: int) -> nn.Sequential:
    """Linear + BatchNorm1d, DMRNet's μ (and log σ²) branch."""
    return nn.Sequential(nn.Linear(in_dim, z_dim), nn.BatchNorm1d(z_dim))


@register_method
class Fusion(Method):
    name = "fusion"
    Config = FusionConfig
    stage_defaults: ClassVar[StageDefaults] = {"train": REFERENCE_SCHEDULE}

    def __init__(self, cfg: FusionConfig, spec: DataSpec):
        super().__init__(cfg, spec)
        if spec.n_classes < 2:
            raise ConfigError(f"method {self.name}: is supervised and needs labels with >= 2 classes, "
                              f"the data has {spec.n_classes}")
        encoders, dims = zip(*(feature_encoder(tuple(s), cfg.backbone) for s in spec.view_shapes))
        self.encoders = nn.ModuleList(encoders)
        self.embed = self.build_embedding(sum(dims), cfg.z_dim)
        self.classifier = nn.Linear(cfg.z_dim, spec.n_classes)

    def build_embedding(self, in_dim: int, z_dim: int) -> nn.Module:
        return embedding_layer(in_dim, z_dim)

    # ------------------------------------------------------------------ forward parts
    def features(self, views: list[Tensor], mask: Tensor) -> list[Tensor]:
        """f_v(x_v) where view v is present, zeros elsewhere (an absent view never reaches f_v)."""
        return apply_each(self.encoders, views, mask)

    def embedding(self, h: Tensor) -> Tensor:
        """The deterministic embedding of fused features h (DMRNet: μ)."""
        return self.embed(h)

    def training_mask(self, mask: Tensor) -> Tensor:
        """The mask after modality drop while the model trains; unchanged in eval mode (N2)."""
        return modality_drop(mask, self.cfg.drop_rate) if self.classifier.training else mask

    # ------------------------------------------------------------------ training
    def loss(self, batch: Batch) -> dict[str, Tensor]:
        mask = self.training_mask(batch.mask)
        if batch.labels is None:
            raise DataError(f"{self.name}: is supervised; its training batches need labels")
        z = self.embedding(torch.cat(self.features(batch.views, mask), 1))
        ce = F.cross_entropy(self.classifier(z), batch.labels)
        return {"objective": ce, "ce": ce.detach()}

    def trained_modules(self) -> list[nn.Module]:
        return [self.encoders, self.embed, self.classifier]

    def check_labels(self, data: MultiViewDataset, device: torch.device | None = None) -> None:
        """Before training and at stage start: the method is supervised, every training sample needs a label
        (−1 means unlabelled in viewsplit, never a class)."""
        if data.labels is None:
            raise DataError(f"method {self.name}: is supervised, but data set {data.name!r} has no labels; give one "
                            "integer label per sample (an npz 'labels' array, data.labels=y.csv, fit(Xs, y))")
        unlabelled = (data.labels < 0).nonzero()[:, 0]
        if len(unlabelled):
            raise DataError(f"method {self.name}: is supervised, but {len(unlabelled)} of the {len(data)} training "
                            f"samples of data set {data.name!r} are unlabelled (label -1; the first at positions "
                            f"{unlabelled[:5].tolist()} of the training split); label them, leave them out, or use an "
                            "unsupervised method")

    def stage(self, name: str) -> Stage:
        if name != "train":
            raise KeyError(name)
        return Stage(name, [Step("model", self.trained_modules(), self.loss)], on_start=self.check_labels)

    # ------------------------------------------------------------------ inference
    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        feats = self.features(views, self.resolve_mask(views, mask))
        return {"Z": self.embedding(torch.cat(feats, 1)), **{f"H_{v}": f for v, f in enumerate(feats)}}

    def predict_logits(self, views: list[Tensor], mask: Tensor | None = None) -> Tensor:
        """Class scores fc(Z) from the views present in ``mask`` (no drop, no sampling; use eval mode)."""
        return self.classifier(self.encode(views, mask)["Z"])

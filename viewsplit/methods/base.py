"""The method interface: every method plugs into the engine, the evaluator and the CLI through it.

A method is an ``nn.Module`` that

* declares its training **stages** (``stage_defaults``: name → default :class:`StageConfig`
  values, in training order);
* for each stage returns a :class:`Stage`: one or more optimiser :class:`Step` s run in order on
  every batch (e.g. a critic step, then an encoder step), each naming the modules it trains and a
  loss function returning a dict whose ``"objective"`` entry is minimised (other entries are
  logged);
* exposes :meth:`encode` → named representations (posterior means; ``C`` for the consistent
  code, ``V_<v>`` for view v's specific code, other names for methods without that split).

Modules that belong to no step of the current stage are frozen and kept in eval mode by the
engine.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ..data.multiview import Batch, MultiViewDataset, check_batch_mask
from ..data.preprocess import Standardizer
from ..errors import ConfigError, DataError
from ..losses import input_neighbour_contrast
from ..models.present import apply_present
from ..typed import check_positive

LossFn = Callable[[Batch], dict[str, Tensor]]
#: stage name → default StageConfig values (a method's ``stage_defaults``)
StageDefaults = dict[str, dict[str, Any]]


@dataclass
class DataSpec:
    """What a method needs to know about the data to build its networks."""

    view_shapes: list[tuple[int, ...]]
    view_names: list[str]
    n_classes: int

    @property
    def n_views(self) -> int:
        return len(self.view_shapes)

    def to_dict(self) -> dict[str, Any]:
        return {"view_shapes": [list(s) for s in self.view_shapes], "view_names": list(self.view_names),
                "n_classes": self.n_classes}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls([tuple(s) for s in d["view_shapes"]], list(d["view_names"]), int(d["n_classes"]))

    @classmethod
    def of(cls, dataset: MultiViewDataset) -> DataSpec:
        return cls(dataset.view_shapes, list(dataset.view_names or []), dataset.n_classes)


@dataclass
class Step:
    """One optimiser step within a training step.

    ``modules`` are trained by this step's optimiser (their parameters must not belong to another
    step of the same stage).  ``param_groups`` may split their parameters into groups with an
    ``lr_scale`` / ``weight_decay`` of their own.  ``repeats`` runs the step several times per
    batch (e.g. ``n_critic``).
    """

    name: str
    modules: list[nn.Module]
    loss: LossFn
    repeats: int = 1
    param_groups: Callable[[list[nn.Module]], list[dict[str, Any]]] | None = None

    def parameters(self) -> list[nn.Parameter]:
        seen, out = set(), []
        for m in self.modules:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out


@dataclass
class Stage:
    name: str
    steps: list[Step]
    #: called by the engine before the stage's first batch (also when resuming into it) with the
    #: training data and the device, e.g. to precompute a frozen model's outputs once
    on_start: Callable[[MultiViewDataset, torch.device], None] | None = None
    #: called by the engine at the end of each epoch of this stage (e.g. DMRNet's weak-view choice)
    on_epoch_end: Callable[[int], None] | None = None
    #: called once the stage's epochs are done, before it is checkpointed as complete; must be
    #: idempotent (a resumed run may call it again)
    on_end: Callable[[MultiViewDataset, torch.device], None] | None = None
    #: extra modules to keep in train mode although no step optimises them
    train_modules: list[nn.Module] = field(default_factory=list)
    #: called with the epoch's mean loss terms; returns warnings (e.g. an estimate that stopped
    #: being a bound), which the engine logs in the epoch row and reports
    check_epoch: Callable[[dict[str, float]], list[str]] | None = None


class Method(nn.Module):
    """Base class of all methods. Subclasses set ``name``, ``Config`` and ``stage_defaults``."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[Any]]   # the method's settings, a dataclass
    #: stage name → default StageConfig values, in training order
    stage_defaults: ClassVar[StageDefaults] = {"train": {}}
    global_step: Tensor   # buffer: optimiser steps taken

    def check_views(self, views: list[Tensor], mask: Tensor | None = None) -> None:
        """Raise a :class:`DataError` unless ``views`` (and ``mask``) fit the data the model was built for:
        one float tensor per view, each with the view's per-sample shape and the same number of samples."""
        n, names = self.spec.n_views, self.spec.view_names
        if not isinstance(views, (list, tuple)) or len(views) != n:
            got = len(views) if isinstance(views, (list, tuple)) else type(views).__name__
            raise DataError(f"{self.name}: expected a list of {n} views {names}, got {got}; pass every view and "
                            "mark the absent ones in mask")
        for v, x in enumerate(views):
            tag = f"{self.name}: view {v} ({names[v]!r})"
            if not isinstance(x, Tensor) or not x.is_floating_point():
                raise DataError(f"{tag}: expected a float tensor, got "
                                f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}")
            if tuple(x.shape[1:]) != tuple(self.spec.view_shapes[v]) or x.shape[0] != views[0].shape[0]:
                raise DataError(f"{tag}: shape {tuple(x.shape)}, the model expects (N, "
                                f"{', '.join(map(str, self.spec.view_shapes[v]))}) with N = {views[0].shape[0]}")
        if mask is not None and (not isinstance(mask, Tensor) or tuple(mask.shape) != (views[0].shape[0], n)):
            found = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise DataError(f"{self.name}: mask must be a ({views[0].shape[0]}, {n}) bool tensor, got {found}")

    def __init__(self, cfg: Any, spec: DataSpec):
        super().__init__()
        if spec.n_views < 2:
            raise ConfigError(f"method {self.name}: needs at least 2 views, the data has {spec.n_views}")
        self.cfg = cfg
        self.spec = spec
        # the global optimiser-step counter, checkpointed with the weights (e.g. MIB's β schedule)
        self.register_buffer("global_step", torch.zeros((), dtype=torch.long))
        # per-view standardisation of the inputs, fitted on the training data and saved with the weights;
        # applied to data sets before training and encoding (``viewsplit.engine.run.build``), not inside ``encode``
        self.preprocess = Standardizer(spec.view_shapes)

    # --------------------------------------------------------------- to implement
    def stage(self, name: str) -> Stage:
        raise NotImplementedError

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def posteriors(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        """(μ, σ) of the representations that are Gaussian posteriors (μ is what ``encode`` gives);
        empty for methods with deterministic codes.  Used to score redundancy from posterior samples."""
        return {}

    # --------------------------------------------------------------- helpers
    @staticmethod
    def full_mask(views: list[Tensor]) -> Tensor:
        return torch.ones(views[0].shape[0], len(views), dtype=torch.bool, device=views[0].device)

    def resolve_mask(self, views: list[Tensor], mask: Tensor | None) -> Tensor:
        """The given mask (validated), or all views present; the views are checked against the model's data."""
        self.check_views(views, mask)
        if mask is None:
            return self.full_mask(views)
        check_batch_mask(mask)
        return mask


def apply_each(nets: Iterable[nn.Module], xs: Iterable[Tensor], mask: Tensor) -> list[Tensor]:
    """``apply_present(nets[v], xs[v], mask[:, v])`` for every view v: per-view networks on present samples."""
    return [apply_present(net, x, mask[:, v]) for v, (net, x) in enumerate(zip(nets, xs))]


# ---------------------------------------------------------------------------- the input-neighbour contrast option
class ContrastKeys(Protocol):
    """The ``contrast`` settings of the methods with one code per view (Soft CCA, FAE, DeCUR, MIB)."""

    contrast: float
    contrast_temperature: float
    gather_distributed: bool


def check_contrast_keys(cfg: ContrastKeys, prefix: str = "model") -> None:
    """Validate the weight (≥ 0) and temperature (> 0) of the contrast option."""
    check_positive(cfg.contrast, f"{prefix}.contrast", allow_zero=True)
    check_positive(cfg.contrast_temperature, f"{prefix}.contrast_temperature")


def add_contrast(terms: dict[str, Tensor], codes: list[Tensor], batch: Batch, cfg: ContrastKeys) -> dict[str, Tensor]:
    """``terms`` with ``cfg.contrast`` · :func:`~viewsplit.losses.input_neighbour_contrast` of the per-view ``codes``
    (neighbours by the batch's views) added to its ``objective`` and logged, detached, as ``contrast``; ``terms``
    itself at weight 0."""
    if cfg.contrast <= 0:
        return terms
    contrast = input_neighbour_contrast(codes, batch.views, batch.mask, cfg.contrast_temperature,
                                        cfg.gather_distributed)
    return {**terms, "objective": terms["objective"] + cfg.contrast * contrast, "contrast": contrast.detach()}


# ---------------------------------------------------------------------------- capabilities
@runtime_checkable
class ViewPredictor(Protocol):
    """A method that predicts every view from the available ones (it has ``predict``: MRDD, FAE)."""

    def eval(self) -> Any: ...

    def predict(self, views: list[Tensor], mask: Tensor | None = None) -> list[Tensor]: ...


@runtime_checkable
class LabelPredictor(Protocol):
    """A supervised method: class scores from the available views (it has ``predict_logits``: Fusion, DMRNet)."""

    def predict_logits(self, views: list[Tensor], mask: Tensor | None = None) -> Tensor: ...


# ---------------------------------------------------------------------------- registry
METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by ``cls.name`` to configs and the CLI."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a non-empty `name`")
    METHODS[cls.name] = cls
    return cls

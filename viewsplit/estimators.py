"""scikit-learn estimators for every method: ``MRDD(c_dim=16, epochs=20).fit(Xs).transform(Xs)``.

``Xs`` is a list of per-view arrays (numpy, torch, pandas or small scipy sparse; any real or boolean
dtype; :mod:`viewsplit.data.arrays`) with the same number of rows:
vector views ``(N, D_v)``, image views ``(N, C, H, W)`` (``uint8`` images are scaled to [0, 1], as
the data loaders do).  Keyword arguments are the method's model settings (its ``Config`` dataclass;
a nested section such as MRDD's ``consistency`` takes a dict of overrides, None = the preset's
section) and the training settings below.  Each class is generated from its method's ``Config``,
so it follows the method without code of its own.

Defaults: the method's shipped vector-data preset, ``configs/handwritten/<method>.yaml``
(:data:`VECTOR_PRESET`; read once, when the class is made): its ``model`` section over the
``Config`` defaults, and its ``stages`` section (epochs, batch size, optimiser, schedule per stage)
over the method's ``stage_defaults``, exactly as ``viewsplit train`` reads that file; a method
without such a preset falls back to its ``Config`` and stage defaults.  ``MRDD()`` therefore trains
the tuned vector preset (c_dim 16, v_dim 6, no masking, 40 + 30 epochs at batch 128), not the
paper's settings (those are ``configs/<data set>/mrdd-reference.yaml``).  The preset's ``data``,
``train`` (except the seed, ``random_state`` 0 either way) and ``eval`` sections do not apply.
Image views get the vector preset's settings too (for MRDD the small ``conv`` network); start from
an image preset instead with :meth:`MultiViewEstimator.from_preset`, e.g.
``MRDD.from_preset("edge_fmnist", epochs=5)`` (``configs/edge_fmnist/mrdd.yaml``).

Training drives the CLI's engine: :func:`viewsplit.engine.run.build` (seeding, standardisation) and
the :class:`~viewsplit.engine.trainer.Trainer` on an in-memory :class:`MultiViewDataset`, in a
temporary run folder; an estimator and ``viewsplit train`` with the same settings and seed give the
same features.  The scikit-learn contract (docs/methods.md#scikit-learn-estimators): ``__init__`` only stores its
arguments, ``fit`` returns ``self``, learned attributes end with ``_``; ``clone``, ``get_params`` /
``set_params``, ``Pipeline`` and ``GridSearchCV`` work.  Cross-validation splits rows of one matrix,
so grid searches take a ``Pipeline`` that starts with :class:`SplitViews`.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import random
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from sklearn import get_config
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .config import RunConfig, load_config
from .data.arrays import ArrayLike, as_dataset, as_mask, check_shapes, class_codes, known_labels, warn_if_shifted
from .data.multiview import MultiViewDataset
from .engine import checkpoint as ckpt
from .engine.run import build, load_model
from .engine.trainer import Trainer
from .errors import DataError
from .estimator_params import DERIVED_DOC, config_of, params_of, preset_params, signature_defaults
from .eval.evaluate import check_finite, code_batches, compose, extract
from .methods import get_method
from .methods.base import LabelPredictor, Method, ViewPredictor
from .presets import VECTOR_PRESET, default_config, preset_file, preset_names
from .splitviews import SplitViews
from .typed import plain

_E = TypeVar("_E", bound="MultiViewEstimator")

#: training settings shared by every estimator, with their defaults
TRAINING = {
    "epochs": None,          # epochs of every stage; None = each stage's default (the preset's)
    "steps": None,           # optimiser steps of every stage instead of epochs; None = each stage's default
    "batch_size": None,      # batch size of every stage; None = each stage's default (at most the data's size)
    "lr": None,              # learning rate of every stage; None = each stage's default
    "stages": None,          # {stage: {StageConfig key: value}} over the preset's stages, applied last
    "standardize": "vectors",  # per-view standardisation stored with the model: vectors, all, none
    "device": "auto",        # auto (CUDA when available), cpu, cuda, cuda:N
    "threads": None,         # threads while fitting; None = viewsplit.threads.default_threads (docs/usage.md#threads)
    "random_state": 0,       # train.seed: weights, batches, masking; None = a fresh random seed
    "representation": None,  # what transform returns; None = the method's main representation
}


class MultiViewEstimator(TransformerMixin, BaseEstimator):
    """Base class of the generated estimators; see the module docstring.

    Fitted attributes: ``method_`` (the trained ``nn.Module``), ``config_`` (its run config),
    ``n_views_``, ``view_shapes_``, ``history_`` (the epoch rows of the training log) and, for the
    supervised methods, ``classes_``.
    """

    method_name: ClassVar[str]
    #: what ``transform`` returns by default
    main_representation: ClassVar[str]
    #: model settings (the method's Config fields) and their defaults in the signature
    model_params: ClassVar[dict[str, Any]]
    #: the defaults' source: the vector preset's path, None = the method's Config and stage defaults
    preset_path: ClassVar[Path | None]
    #: the model section (every Config field, nested sections as dicts) the default parameters stand for
    preset_model: ClassVar[dict[str, Any]]
    #: every stage's settings (all StageConfig keys) the default parameters stand for
    preset_stages: ClassVar[dict[str, dict[str, Any]]]

    @classmethod
    def from_preset(cls: type[_E], name: str, **overrides: Any) -> _E:
        """An unfitted estimator whose parameters stand for the preset ``configs/<name>/<method>.yaml``
        (``name`` = a data set folder, e.g. ``edge_fmnist``; or ``<folder>/<file>`` for another preset of
        this method, e.g. ``edge_mnist/mrdd-reference``), with ``overrides`` on top.

        The preset's ``model`` and ``stages`` sections, ``data.standardize`` and ``train.seed`` /
        ``device`` / ``threads`` become parameters (as :func:`load` reads a saved config), every one of
        them explicit: a stage's batch size larger than the data is an error, not lowered, and a derived
        setting (DCCA's ``top_k``, ...) does not follow the one it derives from (a grid sets both).  A nested
        section or ``stages`` in ``overrides`` is a dict of overrides of the preset's; ``epochs``,
        ``steps``, ``batch_size`` and ``lr`` apply to every stage, below per-stage ``stages`` settings.
        An unknown preset is a :class:`ConfigError` that lists this method's presets.
        """
        return cls(**preset_params(load_config(preset_file(cls.method_name, name)), overrides))

    # ------------------------------------------------------------------ configuration
    def run_config(self, n_samples: int | None = None) -> RunConfig:
        """The validated run config these parameters stand for (a :class:`ConfigError` names a bad one).

        With ``n_samples`` (what ``fit`` passes), a stage's default batch size (the preset's) larger than
        the data is lowered to ``n_samples``; a batch size given explicitly is kept (and checked by the engine).
        """
        return config_of(self.method_name, self.get_params(deep=False), self.preset_model, self.preset_stages,
                         n_samples)

    # ------------------------------------------------------------------ training
    def fit(self, Xs: Sequence[ArrayLike], y: ArrayLike | None = None, mask: ArrayLike | None = None
            ) -> MultiViewEstimator:
        """Train every stage of the method on the views ``Xs`` (``mask``: (N, V) availability, True = present).

        Python's, numpy's and torch's global random generators are left as they were (training seeds its own
        from ``random_state``).  Supervised methods need a label for every sample (-1 or NaN = unlabelled is refused).
        """
        data = as_dataset(Xs, None, mask)
        if len(data) < 2:
            raise DataError(f"Xs: fitting needs at least 2 samples, got {len(data)}")
        cfg = self.run_config(len(data))
        if self._supervised():
            self.classes_, codes = class_codes(y, len(data), type(self).__name__)
            data = MultiViewDataset(data.views, codes, mask=data.mask, name=data.name)
        with _torch_state(), _global_rng():
            method = build(cfg, data)
            with tempfile.TemporaryDirectory(prefix="viewsplit-fit-") as tmp:
                Trainer(cfg, method, method.preprocess.transform(data), tmp).fit()
                log = Path(tmp) / "log.jsonl"
                rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        self.history_ = [r for r in rows if r.get("kind") == "epoch"]
        self._set_fitted(cfg, method)
        return self

    def _set_fitted(self, cfg: RunConfig, method: Method) -> None:
        self.config_ = cfg
        self.method_ = method.eval()
        self.n_views_ = method.spec.n_views
        self.view_shapes_ = [tuple(s) for s in method.spec.view_shapes]
        self.n_features_in_ = sum(int(np.prod(s)) for s in self.view_shapes_)

    @classmethod
    def _supervised(cls) -> bool:
        return hasattr(get_method(cls.method_name), "predict_logits")

    # ------------------------------------------------------------------ features
    def encode(self, Xs: Sequence[ArrayLike] | MultiViewDataset, mask: ArrayLike | None = None
               ) -> dict[str, np.ndarray]:
        """Every representation (posterior means, eval mode), float32, one row per sample: the method's
        own ones plus ``C+V_best`` / ``C+V_all`` for methods with C and V codes."""
        ds = self._dataset(Xs, mask)
        cfg = self.config_
        reps = extract(self.method_, ds, cfg.eval.batch_size, self._device())
        return compose(reps, self.n_views_, cfg.eval.best_view)

    def encode_batches(self, Xs: Sequence[ArrayLike] | MultiViewDataset, mask: ArrayLike | None = None
                       ) -> Iterator[dict[str, np.ndarray]]:
        """:meth:`encode` one ``eval.batch_size`` batch at a time, in order (the same float32 values), so memory
        does not grow with N.  ``Xs`` (here and in :meth:`encode`) may also be a data set, e.g. an on-disk
        folder read in batches: ``folder_dataset(open_folder(path), stream=True)``."""
        ds = self._dataset(Xs, mask)
        cfg = self.config_
        for part in code_batches(self.method_, ds, cfg.eval.batch_size, self._device(), self.method_.encode):
            yield check_finite(compose({k: v.numpy() for k, v in part.items()}, self.n_views_, cfg.eval.best_view),
                               ds.name)

    def transform(self, Xs: Sequence[ArrayLike], mask: ArrayLike | None = None,
                  representation: str | None = None) -> np.ndarray:
        """One representation of every sample (default: ``self.representation``, else the method's main one;
        with a pandas or polars output (``set_output``), choose it by the ``representation`` parameter)."""
        default = self.representation or self.main_representation
        name = representation or default
        output = getattr(self, "_sklearn_output_config", {}).get("transform", get_config()["transform_output"])
        if name != default and output != "default":
            raise DataError(f"representation {name!r}: with set_output(transform={output!r}), set the estimator's "
                            f"representation parameter (set_params(representation={name!r})) to name the columns")
        reps = self.encode(Xs, mask)
        if name not in reps:
            raise DataError(f"representation {name!r}: not one of {type(self).__name__}'s {list(reps)}")
        return reps[name]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of :meth:`transform`'s columns, ``<representation>_<i>`` (what ``set_output(transform="pandas")``
        labels them with); ``input_features`` is ignored (the inputs are views, not one matrix's columns)."""
        check_is_fitted(self, "method_")
        name = self.representation or self.main_representation
        reps = self.encode([np.zeros((2, *s), np.float32) for s in self.view_shapes_])
        if name not in reps:
            raise DataError(f"representation {name!r}: not one of {type(self).__name__}'s {list(reps)}")
        width = reps[name].shape[1]
        return np.asarray([f"{name}_{i}" for i in range(width)], dtype=object)

    def score(self, Xs: Sequence[ArrayLike], y: ArrayLike, mask: ArrayLike | None = None) -> float:
        """Supervised methods: accuracy of :meth:`predict`.  Others: k-means clustering accuracy of
        :meth:`transform` against ``y`` (Hungarian matching, k = the number of classes in ``y``,
        ``n_init=10``, seeded by ``random_state``), the project's main clustering metric.  Only labelled
        samples count: a label -1 or NaN marks an unlabelled one (k-means still clusters every sample)."""
        from sklearn.cluster import KMeans

        from .eval.metrics import cluster_acc

        out = self.predict(Xs, mask) if self._supervised() else self.transform(Xs, mask)
        y, known = known_labels(y, len(out))
        if self._supervised():
            return float(np.mean(out[known] == y[known]))
        feats = np.asarray(out)
        k = len(np.unique(y[known]))
        pred = KMeans(n_clusters=k, n_init=10, random_state=self.config_.train.seed).fit_predict(feats)
        return cluster_acc(y[known], pred[known])

    @available_if(lambda self: hasattr(get_method(self.method_name), "predict"))
    def predict_views(self, Xs: Sequence[ArrayLike], mask: ArrayLike | None = None) -> list[np.ndarray]:
        """Every view of every sample predicted from the views present in ``mask`` (missing-view
        prediction), in the data's units; present views come back reconstructed."""
        ds = self._dataset(Xs, mask)
        assert isinstance(self.method_, ViewPredictor)   # available_if above
        preds = [torch.cat(p) for p in zip(*self._batched(ds, self.method_.predict))]
        return [self.method_.preprocess.invert(v, p).numpy() for v, p in enumerate(preds)]

    @available_if(lambda self: self._supervised())
    def predict(self, Xs: Sequence[ArrayLike], mask: ArrayLike | None = None) -> np.ndarray:
        """Class labels (as given to ``fit``) from the views present in ``mask``."""
        ds = self._dataset(Xs, mask)
        assert isinstance(self.method_, LabelPredictor)   # available_if above
        logits = torch.cat(list(self._batched(ds, self.method_.predict_logits)))
        return self.classes_[logits.argmax(1).numpy()]

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the fitted model (config, weights, standardisation; no data) to ``path``; read it back
        with :func:`viewsplit.load`.  The file has the layout of a run's ``checkpoints/final.pt``."""
        check_is_fitted(self, "method_")
        path = Path(path)
        if path.is_dir():
            raise DataError(f"{path}: is a folder; save writes one model file, e.g. {path / 'model.pt'}")
        if not path.parent.is_dir():
            raise DataError(f"{path}: its folder {path.parent} does not exist")
        try:
            ckpt.atomic_save(ckpt.model_state(self.config_, self.method_), path)
        except OSError as err:
            raise DataError(f"{path}: cannot write the model file ({err.strerror or err})") from None
        return path

    # ------------------------------------------------------------------ helpers
    def _device(self) -> torch.device:
        return next(iter(self.method_.state_dict().values())).device

    def _dataset(self, Xs: Sequence[ArrayLike] | MultiViewDataset, mask: ArrayLike | None) -> MultiViewDataset:
        """New data checked against the fitted views (a view far from its fitted statistics is warned about:
        :func:`~viewsplit.data.arrays.warn_if_shifted`), standardised like the training data."""
        check_is_fitted(self, "method_")
        if isinstance(Xs, MultiViewDataset):
            check_shapes([v.shape for v in Xs.views], self.view_shapes_)
            ds = Xs if mask is None else Xs.with_mask(torch.from_numpy(as_mask(mask)))
        else:
            ds = as_dataset(Xs, None, mask, self.view_shapes_)
        warn_if_shifted(ds, self.method_.preprocess)
        return self.method_.preprocess.transform(ds)

    @torch.no_grad()
    def _batched(self, ds: MultiViewDataset, fn: Callable[[list[torch.Tensor], torch.Tensor], Any]) -> Iterator[Any]:
        """``fn(views, mask)`` over ``ds`` in batches of ``eval.batch_size``, outputs on the CPU."""
        device = self._device()
        for batch in ds.batches(self.config_.eval.batch_size):
            b = batch.to(device)
            out = fn(b.views, b.mask)
            yield [o.float().cpu() for o in out] if isinstance(out, (list, tuple)) else out.float().cpu()


@contextlib.contextmanager
def _torch_state() -> Iterator[None]:
    """Restore torch's global thread count and determinism flag, which the engine sets, after fitting."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=warn)


@contextlib.contextmanager
def _global_rng() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global random generators (CPU and CUDA), which the engine seeds."""
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


# ---------------------------------------------------------------------------- generated classes
def make_estimator(name: str, method: str, main: str) -> type[MultiViewEstimator]:
    """The estimator class of ``method``: keyword arguments = its Config fields, then :data:`TRAINING`;
    defaults from its vector preset (module docstring), read here, once."""
    cls = get_method(method)
    cfg, path = default_config(method)
    preset_model = plain(cfg.model)
    preset_stages = {k: plain(v) for k, v in cfg.stages.items()}
    model = signature_defaults(method, preset_model)
    clash = set(model) & set(TRAINING)
    if clash:
        raise TypeError(f"{cls.Config.__name__}: fields {sorted(clash)} clash with the estimators' training settings")
    defaults = {**model, **TRAINING}

    def __init__(self: MultiViewEstimator, **params: Any) -> None:
        unknown = set(params) - set(defaults)
        if unknown:
            raise TypeError(f"{name}: unknown parameter(s) {sorted(unknown)}; valid: {', '.join(defaults)}")
        for key, default in defaults.items():
            setattr(self, key, params.get(key, default))

    P = inspect.Parameter
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [P("self", P.POSITIONAL_OR_KEYWORD), *(P(k, P.KEYWORD_ONLY, default=d) for k, d in defaults.items())])
    source = (f"the preset configs/{path.parent.name}/{path.name}" if path is not None
              else f"{cls.Config.__name__} and {cls.__name__}.stage_defaults")
    doc = (f"The ``{method}`` method ({cls.__module__}) as a scikit-learn estimator; ``transform`` gives "
           f"``{main}`` by default.\n\nModel settings: {', '.join(model)}.  Training settings: {', '.join(TRAINING)}."
           f"\n\nDefaults: {source}; other presets: ``{name}.from_preset(name)``."
           + (f"  Derived: {DERIVED_DOC[method]}." if method in DERIVED_DOC else ""))
    return type(name, (MultiViewEstimator,), {"__init__": __init__, "__doc__": doc, "__module__": __name__,
                                              "__qualname__": name, "method_name": method,
                                              "main_representation": main, "model_params": model,
                                              "preset_path": path, "preset_model": preset_model,
                                              "preset_stages": preset_stages})


MRDD = make_estimator("MRDD", "mrdd", "C")
MIB = make_estimator("MIB", "mib", "C")
DeCUR = make_estimator("DeCUR", "decur", "C")
SoftCCA = make_estimator("SoftCCA", "softcca", "Z_cat")
FAE = make_estimator("FAE", "fae", "C")
DCCA = make_estimator("DCCA", "dcca", "Z_cat")
DMRNet = make_estimator("DMRNet", "dmrnet", "Z")
Fusion = make_estimator("Fusion", "fusion", "Z")
Autoencoder = make_estimator("Autoencoder", "autoencoder", "C")

#: method name → estimator class
ESTIMATORS: dict[str, type[MultiViewEstimator]] = {
    c.method_name: c for c in (MRDD, MIB, DeCUR, SoftCCA, FAE, DCCA, DMRNet, Fusion, Autoencoder)}


def load(path: str | Path, device: str | None = None) -> MultiViewEstimator:
    """A fitted estimator from a model file (``est.save``) or a run folder (its ``checkpoints/final.pt``).

    Needs no training data.  The file is read with ``torch.load(weights_only=True)``: nothing but
    tensors and plain values is unpickled.  The estimator's parameters are read from the saved
    config, so ``clone(load(path)).fit(Xs)`` trains the same model again.  A file stores no label
    names: a loaded supervised estimator (DMRNet, Fusion) predicts class indices 0 … K−1.
    """
    cfg, method, _ = load_model(path, device)
    if cfg.method not in ESTIMATORS:
        raise DataError(f"{path}: method {cfg.method!r} has no estimator; available: {sorted(ESTIMATORS)}")
    est = ESTIMATORS[cfg.method](**params_of(cfg))
    est._set_fitted(cfg, method)
    if est._supervised():
        est.classes_ = np.arange(method.spec.n_classes)
    return est


__all__ = ["DCCA", "ESTIMATORS", "FAE", "MIB", "MRDD", "VECTOR_PRESET", "DMRNet", "DeCUR", "Fusion",
           "MultiViewEstimator", "SoftCCA", "SplitViews", "as_dataset", "load", "make_estimator", "params_of",
           "preset_file", "preset_names"]

"""Typed run configuration: dataclasses loaded from YAML, with ``key=value`` overrides.

A run config has six sections::

    method: mrdd                 # registered method name
    data:   {name: handwritten}  # DataConfig
    model:  {c_dim: 10}          # the method's own Config dataclass
    stages: {consistency: {epochs: 50, lr: 5.0e-4}}   # StageConfig per declared stage
    train:  {seed: 0}            # TrainConfig
    eval:   {kmeans_seeds: 10}   # EvalConfig

An unknown key, a wrong type or an impossible value raises :class:`ConfigError` naming the
key and listing the valid keys.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .data.registry import DataConfig
from .errors import ConfigError, quote
from .safeyaml import DuplicateKey, read_yaml
from .typed import check_choice, check_positive, check_seed, from_dict, plain

#: the shipped configs, ``configs/<data set>/<method>.yaml`` (also reachable as ./configs in the repository)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step")
PROBES = ("logreg", "linear_svm", "knn", "svc_rbf")


@dataclass
class StageConfig:
    """Optimisation of one training stage (``stages.<name>.*``).

    Length: ``epochs`` or ``steps``, not both.  With ``n`` batches per epoch a stage runs
    ``max(epochs, ⌈min_steps / n⌉)`` whole epochs, or ``⌈steps / n⌉`` epochs with the last one cut short
    after exactly ``steps`` optimiser steps.  A config layer that gives ``epochs`` or ``steps`` replaces
    the length earlier layers gave, ``min_steps`` included (:func:`merge`).  Schedules count epochs.
    """

    #: passes over the training data; null when ``steps`` sets the length
    epochs: int | None = 10
    #: optimiser steps of the stage instead of ``epochs``, whatever the data's size
    steps: int | None = None
    #: with ``epochs``: add whole epochs until the stage takes at least this many steps (0 = off)
    min_steps: int = 0
    #: global batch size (split evenly over DDP ranks)
    batch_size: int = 256
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    #: learning-rate schedule, stepped once per epoch
    scheduler: str = "none"
    #: cosine half-period in epochs; None = the stage's epochs as run (the MRDD reference presets use 20)
    t_max: int | None = None
    eta_min: float = 0.0
    #: ``step`` schedule: multiply the lr by ``gamma`` every ``step_size`` epochs
    step_size: int = 30
    gamma: float = 0.1
    #: clip the gradient norm of each optimiser step's parameters; None = no clipping
    grad_clip: float | None = None
    drop_last: bool = True

    def validate(self, key: str) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError(f"{key}: give the stage's length as epochs or as steps, not "
                              f"{'both' if self.steps is not None else 'neither'} (epochs={self.epochs}, "
                              f"steps={self.steps}); set the other to null")
        if self.epochs is not None:
            check_positive(self.epochs, f"{key}.epochs", allow_zero=True)
        if self.steps is not None:
            check_positive(self.steps, f"{key}.steps", allow_zero=True)
            if self.min_steps:
                raise ConfigError(f"{key}.min_steps: only raises epochs; with steps={self.steps} the length is "
                                  "already in steps (set min_steps=0)")
        check_positive(self.min_steps, f"{key}.min_steps", allow_zero=True)
        check_positive(self.batch_size, f"{key}.batch_size")
        check_positive(self.lr, f"{key}.lr")
        check_choice(self.optimizer, OPTIMIZERS, f"{key}.optimizer")
        check_choice(self.scheduler, SCHEDULERS, f"{key}.scheduler")
        if self.weight_decay < 0:
            raise ConfigError(f"{key}.weight_decay: must be >= 0, got {self.weight_decay}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"{key}.betas: both must lie in [0, 1), got {list(self.betas)}")
        if self.t_max is not None:
            check_positive(self.t_max, f"{key}.t_max")
        check_positive(self.step_size, f"{key}.step_size")
        if self.grad_clip is not None:
            check_positive(self.grad_clip, f"{key}.grad_clip")
        check_positive(self.eta_min, f"{key}.eta_min", allow_zero=True)
        if not 0 <= self.eta_min <= self.lr:
            raise ConfigError(f"{key}.eta_min: must lie in [0, lr], got {self.eta_min}")

    def length(self, batches_per_epoch: int) -> tuple[int, int]:
        """``(epochs, steps)`` the stage runs with ``batches_per_epoch`` optimiser steps per epoch (see the class)."""
        n = max(batches_per_epoch, 1)
        if self.steps is not None:
            return -(-self.steps // n), self.steps
        assert self.epochs is not None   # validate(): exactly one of epochs and steps is set
        epochs = max(self.epochs, -(-self.min_steps // n))
        return epochs, epochs * batches_per_epoch


@dataclass
class TrainConfig:
    """Devices, precision, seeding, logging and checkpointing (``train.*``)."""

    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``
    device: str = "auto"
    #: ``fp32`` or ``bf16`` (autocast)
    precision: str = "fp32"
    #: deterministic algorithms (CPU runs are then bit-reproducible)
    deterministic: bool = True
    #: threads for torch and, in evaluation, BLAS / OpenMP; None = one for vector views, else the usable CPUs
    #: (viewsplit/threads.py; docs/usage.md#threads)
    threads: int | None = None
    #: store image tensors and conv weights channels-last (faster convolutions on CPU and GPU)
    channels_last: bool = True
    #: write a log row every this many optimiser steps (epoch summaries are always written)
    log_every: int = 50
    #: checkpoint every this many epochs (and always at the end of a stage)
    checkpoint_every: int = 1
    #: additionally checkpoint every this many steps inside an epoch (0 = off)
    checkpoint_every_steps: int = 0
    #: progress: ``auto`` (a bar when stderr is a terminal, else plain lines), ``always`` (bar), ``lines``, ``never``
    progress: str = "auto"
    #: seconds between plain progress lines (stage, epoch, step, loss terms, elapsed, ETA)
    progress_every: float = 30.0
    #: also log to TensorBoard when the ``tensorboard`` package is installed
    tensorboard: bool = True

    def validate(self, key: str = "train") -> None:
        check_seed(self.seed, f"{key}.seed")
        check_choice(self.precision, ("fp32", "bf16"), f"{key}.precision")
        check_choice(self.progress, ("auto", "always", "lines", "never"), f"{key}.progress")
        check_positive(self.progress_every, f"{key}.progress_every", allow_zero=True)
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"{key}.device: must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        check_positive(self.log_every, f"{key}.log_every")
        check_positive(self.checkpoint_every, f"{key}.checkpoint_every")
        if self.checkpoint_every_steps < 0:
            raise ConfigError(f"{key}.checkpoint_every_steps: must be >= 0")
        if self.threads is not None:
            check_positive(self.threads, f"{key}.threads")


@dataclass
class EvalConfig:
    """Evaluation protocol (``eval.*``; docs/evaluation.md)."""

    #: k-means repetitions (seeds 0 … kmeans_seeds−1), each with ``kmeans_n_init`` inits
    kmeans_seeds: int = 10
    kmeans_n_init: int = 10
    probes: list[str] = field(default_factory=lambda: ["logreg", "linear_svm", "knn"])
    knn_k: int = 10
    #: the view whose specific code joins C in ``C+V_best`` (a config value, never chosen on test data)
    best_view: int = 0
    #: representations to evaluate; empty = all the method exposes
    representations: list[str] = field(default_factory=list)
    #: extra clustering rows, for comparison with reference protocols: ``train``, ``train+test``
    secondary_splits: list[str] = field(default_factory=list)
    batch_size: int = 1024
    #: factor recovery (docs/evaluation.md#factor-recovery) on data sets that carry their generating factors
    factors: bool = True
    #: held-out redundancy of C in each V_v (docs/evaluation.md#redundancy-of-c-in-v_v): R², Gaussian NLL / information
    redundancy: bool = True
    #: also a small MLP read-out beside the linear one (factor recovery, redundancy)
    readout_mlp: bool = True
    #: also MINE (docs/evaluation.md#mine), trained on the training codes and scored on the test codes: runs
    #: (3 keeps ``eval --mine`` near a minute on Handwritten; ``--full`` = 10, the supplement's count), epochs
    mine: bool = False
    mine_runs: int = 3
    mine_epochs: int = 100
    #: save image grids (reconstructions, swaps) for methods that draw them
    figures: bool = True
    #: ``viewsplit run`` also writes ``<run>/plots/`` (2-D maps of the codes, loss curves; needs matplotlib)
    plots: bool = True
    #: the 2-D maps use a seeded subsample of at most this many test samples
    plot_points: int = 2000
    #: ``viewsplit eval --missing`` with V > 4 views: evaluate at most this many view combinations
    #: (every single view, all views, and a seeded sample of the others); V ≤ 4 evaluates all 2^V − 1
    missing_combinations: int = 16
    #: also evaluate the input views themselves (each view and all concatenated, standardised as the
    #: model sees them) as rows ``raw_<v>`` / ``raw_all``: what learning added (:mod:`viewsplit.eval.baselines`)
    raw_baselines: bool = True
    #: reuse raw-view rows computed before on the same data and settings ($VIEWSPLIT_CACHE/raw-baselines)
    raw_baseline_cache: bool = True
    #: probe solver: ``torch`` (full-batch L-BFGS for the logistic and squared-hinge probes; fast) or
    #: ``sklearn`` (LogisticRegression, LinearSVC); kNN is scikit-learn's under both (eval/probes.py)
    probe_solver: str = "torch"
    #: k-means on more points than this fits on a seeded subsample of this many and assigns all (0 = never)
    kmeans_fit_samples: int = 20000
    #: k-means solver: ``torch`` (a seed's inits batched in float32; fast) or ``sklearn`` (``KMeans``);
    #: the same algorithm and settings (eval/kmeans.py)
    kmeans_solver: str = "torch"
    #: each split contributes at most this many samples to the evaluation: a larger split is replaced, before
    #: its features are extracted, by a seeded subsample (numpy default_rng(0), without replacement, kept in
    #: data-set order), for every measure and the raw baselines (0 = never; eval/evaluate.py cap_splits)
    max_samples: int = 100000

    def validate(self, key: str = "eval") -> None:
        check_positive(self.kmeans_seeds, f"{key}.kmeans_seeds", allow_zero=True)
        check_positive(self.kmeans_n_init, f"{key}.kmeans_n_init")
        check_positive(self.knn_k, f"{key}.knn_k")
        check_positive(self.batch_size, f"{key}.batch_size")
        check_positive(self.mine_runs, f"{key}.mine_runs")
        check_positive(self.mine_epochs, f"{key}.mine_epochs")
        check_positive(self.missing_combinations, f"{key}.missing_combinations")
        check_positive(self.plot_points, f"{key}.plot_points")
        check_choice(self.probe_solver, ("torch", "sklearn"), f"{key}.probe_solver")
        check_choice(self.kmeans_solver, ("torch", "sklearn"), f"{key}.kmeans_solver")
        check_positive(self.kmeans_fit_samples, f"{key}.kmeans_fit_samples", allow_zero=True)
        check_positive(self.max_samples, f"{key}.max_samples", allow_zero=True)
        for p in self.probes:
            check_choice(p, PROBES, f"{key}.probes")
        for s in self.secondary_splits:
            check_choice(s, ("train", "test", "train+test"), f"{key}.secondary_splits")
        if self.best_view < 0:
            raise ConfigError(f"{key}.best_view: must be a view index >= 0, got {self.best_view}")


@dataclass
class RunConfig:
    method: str
    data: DataConfig
    model: Any
    stages: dict[str, StageConfig]
    train: TrainConfig
    eval: EvalConfig

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "data": plain(self.data),
            "model": plain(self.model),
            "stages": {k: plain(v) for k, v in self.stages.items()},
            "train": plain(self.train),
            "eval": plain(self.eval),
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


SECTIONS = ("method", "data", "model", "stages", "train", "eval")


# ---------------------------------------------------------------------------- building
def load_config(path: str | Path | None = None, overrides: Sequence[str] = (),
                base: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config (or start from ``base``), apply ``key=value`` overrides, validate."""
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides: expected a list of key=value strings, got {quote(overrides)}")
    raw: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{p}: config file not found")
        if p.is_dir():
            raise ConfigError(f"{p}: is a folder; give a YAML config file")
        try:
            loaded = read_yaml(p.read_text(), str(p))
        except DuplicateKey as err:
            raise ConfigError(f"{p}: {err}") from None
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"{p}: not valid YAML ({err})") from None
        if loaded is None:
            raise ConfigError(f"{p}: the config file is empty; a run config names at least its method, e.g. "
                              "method: mrdd")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: a run config must be a mapping of sections {list(SECTIONS)}")
        raw = merge(raw, loaded)
    for item in overrides:
        raw = merge(raw, _no_dropped_section(raw, parse_override(item), item))
    return build_config(raw)


def _no_dropped_section(raw: dict[str, Any], over: dict[str, Any], item: str) -> dict[str, Any]:
    """``over`` (one parsed override), unless it sets a whole mapping of ``raw`` to null or to another kind of
    value, which would silently drop every key the config gave there."""
    cur: Any = raw
    new: Any = over
    path: list[str] = []
    while isinstance(new, dict) and len(new) == 1:
        (k, v), = new.items()
        if not isinstance(cur, dict) or k not in cur:
            return over
        path.append(str(k))
        if isinstance(cur[k], dict) and cur[k] and not isinstance(v, dict):
            key = ".".join(path)
            raise ConfigError(f"override {quote(item)}: would drop every key the config gives under {key} "
                              f"({', '.join(map(str, cur[k]))}); set its keys one by one, e.g. {key}.KEY=VALUE")
        cur, new = cur[k], v
    return over


def parse_override(item: str) -> dict[str, Any]:
    """``a.b.c=value`` → ``{"a": {"b": {"c": value}}}`` with ``value`` parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {quote(item)}: expected key=value, e.g. stages.train.epochs=5")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {quote(item)}: empty key")
    try:
        value = read_yaml(text, f"override {quote(item)}") if text.strip() else ""
    except DuplicateKey as err:
        raise ConfigError(f"override {quote(item)}: {err}") from None
    except yaml.YAMLError:
        value = text
    out: dict[str, Any] = {}
    cur = out
    parts = key.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    return out


def build_config(raw: dict[str, Any]) -> RunConfig:
    from .methods import get_method

    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown config section(s) {quote(sorted(map(str, unknown)))}; valid sections: "
                          f"{list(SECTIONS)}")
    if "method" not in raw:
        raise ConfigError("method: missing; name a registered method, e.g. method: mrdd")
    if not isinstance(raw["method"], str):
        raise ConfigError(f"method: expected a method name, got {quote(raw['method'])}")
    cls = get_method(raw["method"])
    data = from_dict(DataConfig, _section(raw, "data"), "data")
    data.validate()
    model = from_dict(cls.Config, _section(raw, "model"), "model")
    if hasattr(model, "validate"):
        model.validate()
    stage_raw = _section(raw, "stages")
    extra = set(stage_raw) - set(cls.stage_defaults)
    if extra:
        raise ConfigError(f"stages: unknown stage(s) {sorted(extra)} for method {cls.name!r}; "
                          f"its stages are {list(cls.stage_defaults)}")
    stages = {}
    for name, defaults in cls.stage_defaults.items():
        given = stage_raw.get(name) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"stages.{name}: expected a mapping of StageConfig keys, got {quote(given)}")
        st = from_dict(StageConfig, merge(dict(defaults), given), f"stages.{name}")
        st.validate(f"stages.{name}")
        stages[name] = st
    train = from_dict(TrainConfig, _section(raw, "train"), "train")
    train.validate()
    ev = from_dict(EvalConfig, _section(raw, "eval"), "eval")
    ev.validate()
    return RunConfig(cls.name, data, model, stages, train, ev)


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    val = raw.get(name) or {}
    if not isinstance(val, dict):
        raise ConfigError(f"{name}: expected a mapping of keys, got {quote(val)}")
    return val


#: the keys of a stage's length (:class:`StageConfig`)
LENGTH_KEYS: dict[str, int | None] = {"epochs": None, "steps": None, "min_steps": 0}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge mapping ``b`` over ``a`` (a new dict).

    A stage's length is one setting: when ``b`` gives ``epochs`` or ``steps`` (not null), the length
    keys ``a`` gave (``epochs``, ``steps``, ``min_steps``) are reset first, so a later layer's
    ``epochs=5`` means five epochs even over a preset's ``steps`` or ``min_steps``.
    """
    out = dict(a)
    if any(b.get(k) is not None for k in ("epochs", "steps")):
        out.update(LENGTH_KEYS)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

"""Data configuration and the registry of built-in data sets."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..files import atomic_path
from ..typed import check_seed
from .multiview import DataSplits, MultiViewDataset, make_incomplete, stratified_split
from .preprocess import STANDARDIZE


@dataclass
class DataConfig:
    """Which data set to load and how (``data.*`` keys of a run config)."""

    name: str = "handwritten"
    #: folder holding the data set's original files (IDX, COIL PNGs, Office-31 tree, CSVs)
    root: str | None = None
    #: a user's ``.npz`` file (``data.name=npz``)
    path: str | None = None
    #: per-view CSV files, in view order (``data.name=csv``); ``imagefolder``: the view folders to use, in
    #: this order (default: every sub-folder of data.path, sorted by name)
    views: list[str] = field(default_factory=list)
    #: optional labels file: CSV of integers (``csv``)
    labels: str | None = None
    #: seed of the train/test split and of seeded view constructions (COIL grouping, jitter)
    seed: int = 0
    #: test fraction for data sets without an official split
    test_fraction: float = 0.2
    #: COIL: ``reference`` (sklearn-equivalent RandomState(42) split) or ``stratified``
    split: str = "reference"
    #: COIL: ``random`` (seeded pose groups) or ``interleaved``
    grouping: str = "random"
    #: number of views for data sets where it is a choice (COIL, synthetic)
    n_views: int = 3
    #: fraction of incomplete training samples (docs/evaluation.md#missing-views); 0 = complete data
    missing_rate: float = 0.0
    missing_seed: int = 0
    #: keep only this many (stratified, seeded) training / test samples; for quick runs
    train_limit: int | None = None
    test_limit: int | None = None
    #: synthetic generator (data/synthetic.py): samples, classes, class-embedding size, shared and
    #: view-private factor sizes, view dimension, noise, the mixing networks' width and gain
    n_samples: int = 2000
    n_classes: int = 4
    class_dim: int = 4
    shared_dim: int = 2
    specific_dim: int = 3
    view_dim: int = 32
    noise: float = 0.05
    mixing_hidden: int = 64
    mixing_gain: float = 1.5
    #: cache preprocessed tensors (Edge-MNIST, COIL, Office-31) under $VIEWSPLIT_CACHE
    cache: bool = True
    #: ``augpairs``: the image data set and view whose two augmentations form the views, and
    #: overrides of the augmentation strengths (AugmentConfig keys: degrees, translate, scale_min,
    #: scale_max, shear, corruption; defaults = MIB's, docs/datasets.md#mib-augmentation-pairs)
    source: str | None = None
    source_view: int = 0
    augment: dict[str, float] = field(default_factory=dict)
    #: per-view standardisation fitted on the training split and stored with the model
    #: (:mod:`viewsplit.data.preprocess`): ``vectors`` (vector views), ``all`` or ``none``
    standardize: str = "vectors"
    #: ``folder``: stream the memory-mapped views (true), read them into memory (false), or None = stream
    #: when the view files hold more than ``stream_above_mb`` MiB; batches read ahead by a thread (0 = off).
    #: COIL / Office-31: stream = decode each batch's image files in that thread instead of all up front
    stream: bool | None = None
    stream_above_mb: int = 2048
    prefetch: int = 2
    #: ``imagefolder``: images are resized to image_size × image_size; channels 1 (grey) or 3 (RGB), one value for
    #: every view or one per view (None = from each view's first image)
    image_size: int = 64
    channels: int | list[int] | None = None

    def validate(self) -> None:
        check_seed(self.seed, "data.seed")
        check_seed(self.missing_seed, "data.missing_seed")
        if self.name not in DATASETS:
            raise ConfigError(f"data.name: unknown data set {self.name!r}; choose one of {sorted(DATASETS)}")
        if not 0.0 <= self.missing_rate < 1.0 + 1e-12:
            raise ConfigError(f"data.missing_rate: must lie in [0, 1], got {self.missing_rate}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"data.test_fraction: must lie in (0, 1), got {self.test_fraction}")
        if self.split not in ("reference", "stratified"):
            raise ConfigError(f"data.split: must be 'reference' or 'stratified', got {self.split!r}")
        if self.grouping not in ("random", "interleaved"):
            raise ConfigError(f"data.grouping: must be 'random' or 'interleaved', got {self.grouping!r}")
        for key in ("train_limit", "test_limit"):
            val = getattr(self, key)
            if val is not None and val < 1:
                raise ConfigError(f"data.{key}: must be a positive number of samples, got {val}")
        if self.n_views < 2:
            raise ConfigError(f"data.n_views: need at least 2 views, got {self.n_views}")
        if self.standardize not in STANDARDIZE:
            raise ConfigError(f"data.standardize: {self.standardize!r} is not one of {list(STANDARDIZE)}")
        if self.stream_above_mb < 0 or self.prefetch < 0:
            raise ConfigError(f"data.stream_above_mb, data.prefetch: must be >= 0, got {self.stream_above_mb}, "
                              f"{self.prefetch}")
        if self.image_size < 1:
            raise ConfigError(f"data.image_size: must be >= 1 pixel, got {self.image_size}")
        chans = [self.channels] if isinstance(self.channels, int) else self.channels or []
        if any(c not in (1, 3) for c in chans) or self.channels == []:
            raise ConfigError(f"data.channels: must be 1 (grey) or 3 (RGB), for every view or one per view, got "
                              f"{self.channels}")
        if self.source_view < 0:
            raise ConfigError(f"data.source_view: must be a view index >= 0, got {self.source_view}")
        for key in ("n_samples", "n_classes", "class_dim", "shared_dim", "specific_dim", "view_dim", "mixing_hidden"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(self, key)}")
        if self.noise < 0 or self.mixing_gain <= 0:
            raise ConfigError(f"data.noise / data.mixing_gain: need noise >= 0 and gain > 0, got {self.noise} / "
                              f"{self.mixing_gain}")


@dataclass
class DatasetInfo:
    """One registered data set: how to load it and what ``viewsplit datasets`` shows."""

    name: str
    load: Callable[[DataConfig], DataSplits]
    summary: str
    #: returns (found, where) without loading: where the files were found or looked for
    locate: Callable[[DataConfig], tuple[bool, str]]
    #: static description: views, per-view shapes, samples, classes
    shape: str


DATASETS: dict[str, DatasetInfo] = {}
Loader = Callable[[DataConfig], DataSplits]
Locator = Callable[[DataConfig], tuple[bool, str]]


def register(name: str, summary: str, shape: str, locate: Locator) -> Callable[[Loader], Loader]:
    """Decorator: add the loader to :data:`DATASETS` as ``name``."""
    def deco(fn: Loader) -> Loader:
        DATASETS[name] = DatasetInfo(name, fn, summary, locate, shape)
        return fn

    return deco


def folder_at_path(hint: str) -> Locator:
    """A locator for data sets read from the folder ``data.path``: found when it is a folder; ``hint`` otherwise."""
    def locate(cfg: DataConfig) -> tuple[bool, str]:
        return bool(cfg.path and Path(cfg.path).expanduser().is_dir()), cfg.path or hint

    return locate


def always_found(where: str) -> Callable[[DataConfig], tuple[bool, str]]:
    return lambda cfg: (True, where)


def load_dataset(cfg: DataConfig) -> DataSplits:
    """Load a data set by name, then apply the limits and the missing-view mask.

    The missing-view mask applies to the training split only; evaluation always sees complete
    test data unless a missing-view protocol sets masks explicitly.
    """
    cfg.validate()
    splits = DATASETS[cfg.name].load(cfg)
    train, test = splits.train, splits.test
    if cfg.train_limit is not None and cfg.train_limit < len(train):
        train = limit(train, cfg.train_limit, cfg.seed)
    if cfg.test_limit is not None and cfg.test_limit < len(test):
        test = limit(test, cfg.test_limit, cfg.seed + 1)
    if cfg.missing_rate > 0:
        train = make_incomplete(train, cfg.missing_rate, cfg.missing_seed)
    info = dict(splits.info, train_samples=len(train), test_samples=len(test))
    if cfg.missing_rate > 0:
        info.update(missing_rate=cfg.missing_rate, missing_seed=cfg.missing_seed)
    return DataSplits(train, test, splits.cluster_on, info)


def limit(ds: MultiViewDataset, n: int, seed: int) -> MultiViewDataset:
    """A seeded, stratified (when labelled) subset of ``n`` samples, kept in data-set order."""
    if ds.labels is None:
        idx = np.sort(np.random.default_rng(seed).permutation(len(ds))[:n])
    else:
        frac = 1.0 - n / len(ds)
        idx, _ = stratified_split(ds.labels.numpy(), frac, seed)
    return ds.subset(idx)


# ---------------------------------------------------------------------------- files & cache
def data_roots(cfg: DataConfig, subdir: str, extra: Sequence[str] = ()) -> list[Path]:
    """Candidate folders: ``data.root``, then ``$VIEWSPLIT_DATA/<subdir>`` and ``$VIEWSPLIT_DATA``."""
    roots: list[Path] = []
    if cfg.root:
        roots.append(Path(cfg.root).expanduser())
    env = os.environ.get("VIEWSPLIT_DATA")
    if env:
        roots += [Path(env).expanduser() / subdir, Path(env).expanduser()]
    roots += [Path(p) for p in extra]
    return roots


def cache_dir() -> Path:
    base = os.environ.get("VIEWSPLIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "viewsplit"
    )
    return Path(base)


def cache_path(key: str) -> Path:
    """Where :func:`cached` keeps entry ``key``."""
    return cache_dir() / f"{key}.pt"


def cached(key: str, build: Callable[[], dict], enabled: bool = True) -> dict:
    """Load a dict of tensors from the cache (:func:`cache_path`), or build and store it atomically."""
    if not enabled:
        return build()
    path = cache_path(key)
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a corrupt cache entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    out = build()
    try:
        with atomic_path(path) as tmp:
            torch.save(out, tmp)
    except OSError:
        pass  # a read-only cache location only costs the preprocessing time
    return out


def file_fingerprint(paths: list[Path]) -> str:
    import hashlib

    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def missing_files_error(what: str, looked: list[Path], files: list[str], how: str) -> DataError:
    where = "\n  ".join(str(p) for p in looked) or "(no folder given)"
    return DataError(
        f"{what}: could not find {', '.join(files)}.\nLooked in:\n  {where}\n{how}"
    )

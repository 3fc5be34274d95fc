"""A user's own data: one ``.npz`` file or one CSV file per view.

``data.name=npz data.path=FILE.npz``: arrays ``view0``, ``view1``, … (each ``(N, D)`` or
``(N, C, H, W)``), optional ``labels`` (N integers) and optional ``train_index`` /
``test_index``.  Without indices, a seeded stratified split (``data.test_fraction``) is drawn.

``data.name=csv data.views=[a.csv,b.csv] [data.labels=y.csv]``: numeric CSVs (a non-numeric
first row is taken as a header), one row per sample, aligned across files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .multiview import DataSplits, MultiViewDataset, stratified_split
from .registry import DataConfig, register


def _as_view(arr: np.ndarray, where: str) -> torch.Tensor:
    if arr.dtype == np.uint8 and arr.ndim == 4:
        return torch.from_numpy(np.ascontiguousarray(arr))
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{where}: must be numeric, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _as_labels(arr: np.ndarray, where: str) -> torch.Tensor:
    arr = np.asarray(arr).reshape(-1) if np.asarray(arr).ndim == 2 and np.asarray(arr).shape[1] == 1 else np.asarray(arr)
    if arr.ndim != 1:
        raise DataError(f"{where}: labels must be one integer per sample, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise DataError(f"{where}: labels must be integers")
    arr = arr.astype(np.int64)
    classes = np.unique(arr[arr >= 0])
    if len(classes) and not np.array_equal(classes, np.arange(len(classes))):
        # map arbitrary integer class ids to 0..K-1, keeping their order
        arr = np.where(arr >= 0, np.searchsorted(classes, arr), -1)
    return torch.from_numpy(arr)


def _split(views, labels, cfg: DataConfig, name: str, view_names, train_idx=None, test_idx=None) -> DataSplits:
    full = MultiViewDataset(views, labels, view_names, name=name)
    train_idx, test_idx, info = split_indices(full.labels, len(full), cfg, name, train_idx, test_idx)
    return DataSplits(full.subset(train_idx), full.subset(test_idx), cluster_on="test", info=info)


def split_indices(labels: torch.Tensor | None, n: int, cfg: DataConfig, name: str, train_idx=None,
                  test_idx=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The given train/test indices (checked), or a seeded split: stratified when labelled."""
    if train_idx is None:
        if labels is not None:
            train_idx, test_idx = stratified_split(labels.numpy(), cfg.test_fraction, cfg.seed)
        else:
            perm = np.random.default_rng(cfg.seed).permutation(n)
            k = int(np.floor(cfg.test_fraction * n + 0.5))
            train_idx, test_idx = np.sort(perm[k:]), np.sort(perm[:k])
        info = {"split": "stratified" if labels is not None else "random", "split_seed": cfg.seed,
                "test_fraction": cfg.test_fraction}
    else:
        info = {"split": "given by file"}
    for key, idx in (("train_index", train_idx), ("test_index", test_idx)):
        idx = np.asarray(idx)
        if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= n:
            raise DataError(f"{name}: {key} must be a non-empty list of sample indices in [0, {n})")
    return np.asarray(train_idx), np.asarray(test_idx), info


@register("npz", "your own views from one .npz file (data.path=FILE.npz)",
          "arrays view0, view1, … (+ optional labels, train_index, test_index)",
          lambda cfg: (bool(cfg.path) and Path(cfg.path).exists(), cfg.path or "set data.path=FILE.npz"))
def load_npz(cfg: DataConfig) -> DataSplits:
    if not cfg.path:
        raise DataError("data.path: the npz data set needs data.path=FILE.npz")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found (data.path)")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    keys = set(z.files)
    names = sorted((k for k in keys if k.startswith("view") and k[4:].isdigit()), key=lambda k: int(k[4:]))
    if [int(k[4:]) for k in names] != list(range(len(names))):
        raise DataError(f"{path}: view arrays must be named view0, view1, … without gaps; found {names}")
    unknown = keys - set(names) - {"labels", "train_index", "test_index"}
    if unknown:
        raise DataError(f"{path}: unknown arrays {sorted(unknown)}; expected view0, view1, …, labels, "
                        "train_index, test_index")
    views = [_as_view(z[k], f"{path}: array {k!r}") for k in names]
    labels = _as_labels(z["labels"], f"{path}: array 'labels'") if "labels" in keys else None
    if ("train_index" in keys) != ("test_index" in keys):
        raise DataError(f"{path}: give both train_index and test_index, or neither")
    tr = z["train_index"] if "train_index" in keys else None
    te = z["test_index"] if "test_index" in keys else None
    return _split(views, labels, cfg, path.stem, names, tr, te)


def _read_csv(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    with open(path) as fh:
        first = fh.readline()
    try:
        [float(t) for t in first.strip().split(",") if t.strip()]
        skip = 0
    except ValueError:
        skip = 1
    try:
        arr = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise DataError(f"{path}: not a numeric CSV ({err})") from None
    if arr.size == 0:
        raise DataError(f"{path}: no data rows")
    return arr


@register("csv", "your own views as one CSV per view (data.views=[a.csv,b.csv], data.labels=y.csv)",
          "one CSV per view, rows aligned; optional labels CSV",
          lambda cfg: (bool(cfg.views) and all(Path(p).exists() for p in cfg.views),
                       ", ".join(cfg.views) or "set data.views=[a.csv,b.csv]"))
def load_csv(cfg: DataConfig) -> DataSplits:
    if len(cfg.views) < 2:
        raise DataError(f"data.views: the csv data set needs at least 2 CSV files, got {cfg.views}")
    paths = [Path(p).expanduser() for p in cfg.views]
    views = [_as_view(_read_csv(p).astype(np.float32), str(p)) for p in paths]
    labels = None
    if cfg.labels:
        lp = Path(cfg.labels).expanduser()
        labels = _as_labels(_read_csv(lp), str(lp))
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        names = [f"view{v}" for v in range(len(paths))]
    return _split(views, labels, cfg, "csv", names)

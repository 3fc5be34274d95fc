"""A user's own data: one ``.npz`` file or one CSV file per view.

``data.name=npz data.path=FILE.npz``: arrays ``view0``, ``view1``, … (each ``(N, D)`` or
``(N, C, H, W)``), optional ``labels`` (N integers) and optional ``train_index`` /
``test_index``.  Without indices, a seeded stratified split (``data.test_fraction``) is drawn.
Known generating factors (docs/evaluation.md#factor-recovery), if any: ``factors_shared`` and ``factors_view0``,
``factors_view1``, … (``(N,)`` or ``(N, k)``); the evaluation then reports factor recovery.

``data.name=csv data.views=[a.csv,b.csv] [data.labels=y.csv]``: numeric CSVs (a non-numeric
first row is taken as a header), one row per sample, aligned across files.
"""
from __future__ import annotations

import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, DataWarning, quote
from .multiview import DataSplits, MultiViewDataset, check_values, stratified_split
from .registry import DataConfig, register


def _as_view(arr: np.ndarray, where: str) -> torch.Tensor:
    if arr.dtype == np.uint8 and arr.ndim == 4:
        return torch.from_numpy(np.ascontiguousarray(arr))
    if arr.ndim == 0:
        raise DataError(f"{where}: a single number, expected one row per sample ((N, D) or (N, C, H, W))")
    if arr.dtype == np.bool_:   # 0/1 features, as viewsplit convert stores them
        arr = arr.astype(np.float32)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{where}: must be numeric, got dtype {arr.dtype}")
    if arr.ndim >= 1 and arr.size:   # before the float32 cast, which would turn huge values into Inf
        check_values(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64)), where)
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def _as_labels(arr: np.ndarray, where: str) -> torch.Tensor:
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{where}: labels must be one integer per sample, got shape {arr.shape}")
    if (not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating)
            or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)) or np.any(np.abs(arr) > 2**53)):
        got = f"dtype {arr.dtype}" if arr.dtype.kind not in "iuf" else "non-integer or non-finite values"
        raise DataError(f"{where}: labels must be integers (class ids 0 … K-1, -1 = unlabelled), got {got}")
    arr = arr.astype(np.int64)
    if np.any(arr < -1):
        raise DataError(f"{where}: labels must be >= 0 (or -1 for unlabelled), got "
                        f"{np.unique(arr[arr < -1])[:5].tolist()}")
    if np.any(arr == -1) and set(np.unique(arr).tolist()) == {-1, 1}:
        warnings.warn(f"{where}: the labels are -1 and 1 only; -1 means unlabelled in viewsplit, so only the samples "
                      "labelled 1 count as labelled (one class); if -1 is a class, store the labels as 0 and 1",
                      DataWarning, stacklevel=2)
    classes = np.unique(arr[arr >= 0])
    if len(classes) and not np.array_equal(classes, np.arange(len(classes))):
        # map arbitrary integer class ids to 0..K-1, keeping their order
        arr = np.where(arr >= 0, np.searchsorted(classes, arr), -1)
    return torch.from_numpy(arr)


def _as_factor(arr: np.ndarray, where: str) -> torch.Tensor:
    if (not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating)
            or arr.ndim not in (1, 2)):
        raise DataError(f"{where}: a factor must be a numeric (N,) or (N, k) array, got {arr.dtype} {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.reshape(len(arr), -1), dtype=np.float32))


def _split(views: list[torch.Tensor], labels: torch.Tensor | None, cfg: DataConfig, name: str,
           view_names: list[str], train_idx: np.ndarray | None = None, test_idx: np.ndarray | None = None,
           factors: dict[str, torch.Tensor] | None = None) -> DataSplits:
    full = MultiViewDataset(views, labels, view_names, name=name, factors=factors)
    train_idx, test_idx, info = split_indices(full.labels, len(full), cfg, name, train_idx, test_idx)
    return DataSplits(full.subset(train_idx), full.subset(test_idx), cluster_on="test", info=info)


def split_indices(labels: torch.Tensor | None, n: int, cfg: DataConfig, name: str,
                  train_idx: np.ndarray | None = None,
                  test_idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """The given train/test indices (checked: distinct, disjoint, in range), or a seeded split: stratified
    when labelled."""
    if train_idx is None:
        if labels is not None:
            train_idx, test_idx = stratified_split(labels.numpy(), cfg.test_fraction, cfg.seed)
        else:
            perm = np.random.default_rng(cfg.seed).permutation(n)
            k = int(np.floor(cfg.test_fraction * n + 0.5))
            train_idx, test_idx = np.sort(perm[k:]), np.sort(perm[:k])
        if len(train_idx) == 0 or len(test_idx) == 0:
            raise DataError(f"{name}: {n} samples are too few for a train/test split (data.test_fraction="
                            f"{cfg.test_fraction} puts {len(test_idx)} in test and {len(train_idx)} in train); "
                            "add samples, change data.test_fraction, or give train_index and test_index")
        info = {"split": "stratified" if labels is not None else "random", "split_seed": cfg.seed,
                "test_fraction": cfg.test_fraction}
    else:
        train_idx, test_idx = _index(train_idx, "train_index", name, n), _index(test_idx, "test_index", name, n)
        shared = np.intersect1d(train_idx, test_idx)
        if len(shared):
            raise DataError(f"{name}: train_index and test_index share {len(shared)} samples (first: "
                            f"{shared[:5].tolist()}); the test samples would leak into training")
        info = {"split": "given by file"}
    return np.asarray(train_idx), np.asarray(test_idx), info


def _index(idx: np.ndarray | None, key: str, name: str, n: int) -> np.ndarray:
    """A file's ``train_index`` / ``test_index``: distinct integer sample indices in [0, n)."""
    idx = np.asarray(idx)
    if idx.ndim != 1 or len(idx) == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= n:
        raise DataError(f"{name}: {key} must be a non-empty 1-d integer array of sample indices in [0, {n}), got "
                        f"dtype {idx.dtype}, shape {idx.shape}")
    if len(np.unique(idx)) != len(idx):
        raise DataError(f"{name}: {key} repeats sample indices; each sample may appear once")
    return idx


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file; any unreadable file or array is a :class:`DataError` naming it."""
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file ({err}) (data.path)") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: holds a single array (.npy), not an .npz archive (data.path); save the views "
                        "with np.savez(FILE, view0=..., view1=..., labels=...)")
    with z:
        names = set(z.files)
        views = sorted((k for k in names if k.startswith("view") and k[4:].isdigit()), key=lambda k: int(k[4:]))
        if [int(k[4:]) for k in views] != list(range(len(views))):
            raise DataError(f"{path}: view arrays must be named view0, view1, … without gaps; found {views}")
        factors = {k for k in names if k == "factors_shared" or (k.startswith("factors_view") and k[12:].isdigit())}
        unknown = names - set(views) - factors - {"labels", "train_index", "test_index"}
        if unknown:
            raise DataError(f"{path}: unknown arrays {sorted(unknown)}; expected view0, view1, …, labels, "
                            "train_index, test_index, factors_shared, factors_view0, …")
        out = {}
        for k in [*views, *sorted(names - set(views))]:
            try:
                out[k] = z[k]
            except ValueError as err:
                raise DataError(f"{path}: array {k!r} cannot be read ({err}); store numbers, not Python "
                                "objects") from None
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise DataError(f"{path}: array {k!r} is truncated or corrupt ({err})") from None
    return out


@register("npz", "your own views from one .npz file (data.path=FILE.npz)",
          "arrays view0, view1, … (+ optional labels, train_index, test_index)",
          lambda cfg: (bool(cfg.path and Path(cfg.path).expanduser().exists()), cfg.path or "set data.path=FILE.npz"))
def load_npz(cfg: DataConfig) -> DataSplits:
    if not cfg.path:
        raise DataError("data.path: the npz data set needs data.path=FILE.npz")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found (data.path)")
    z = _read_npz(path)
    names = [k for k in z if k.startswith("view")]
    if len(names) < 2:
        raise DataError(f"{path}: holds {len(names)} view arrays {names}; a multi-view data set needs at least view0 "
                        "and view1 (data.path)")
    scalar = [k for k in names if z[k].ndim == 0]
    if scalar:
        raise DataError(f"{path}: array {scalar[0]!r} is a single number, expected one row per sample")
    n = len(z[names[0]])
    if "labels" in z and len(z["labels"]) != n:
        raise DataError(f"{path}: array 'labels' holds {len(z['labels'])} labels for the {n} samples of view0")
    factors = {k[8:]: _as_factor(z[k], f"{path}: array {k!r}") for k in z if k.startswith("factors_")} or None
    views = [_as_view(z[k], f"{path}: array {k!r}") for k in names]
    labels = _as_labels(z["labels"], f"{path}: array 'labels'") if "labels" in z else None
    if ("train_index" in z) != ("test_index" in z):
        raise DataError(f"{path}: give both train_index and test_index, or neither")
    return _split(views, labels, cfg, path.stem, names, z.get("train_index"), z.get("test_index"), factors)


def _view_keys(keys: set[str], path: Path) -> list[str]:
    """The npz arrays ``view0``, ``view1``, … in view order (an error names gaps)."""
    names = sorted((k for k in keys if k.startswith("view") and k[4:].isdigit()), key=lambda k: int(k[4:]))
    if [int(k[4:]) for k in names] != list(range(len(names))):
        raise DataError(f"{path}: view arrays must be named view0, view1, … without gaps; found {names}")
    return names


def read_views(paths: Sequence[str | Path]) -> tuple[list[np.ndarray], np.ndarray | None]:
    """New data to encode or predict from, all samples in file order: one ``.npz`` (arrays ``view0``,
    ``view1``, …, optional ``mask`` (N, V), other arrays ignored) or one CSV per view.
    Returns the views as loaded and the mask (None when the file has none)."""
    files = [Path(p).expanduser() for p in paths]
    if len(files) == 1 and files[0].suffix == ".npz":
        if not files[0].exists():
            raise DataError(f"{files[0]}: file not found (--data)")
        try:
            with np.load(files[0], allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError) as err:
            raise DataError(f"{files[0]}: not a readable .npz file ({err})") from None
        names = _view_keys(set(arrays), files[0])
        if len(names) < 2:
            raise DataError(f"{files[0]}: holds {len(names)} view arrays {names}; expected view0, view1, … (--data)")
        return [arrays[k] for k in names], arrays.get("mask")
    if len(files) < 2 or any(p.suffix == ".npz" for p in files):
        raise DataError(f"--data: give one .npz file or one CSV file per view, got {[str(p) for p in files]}")
    return [_read_csv(p) for p in files], None


def check_mask(mask: np.ndarray, n: int, n_views: int, where: str) -> np.ndarray:
    """A view-availability mask read from a file: ``(n, n_views)`` of 0/1 or bool, every row with a view; as bool."""
    mask = np.asarray(mask)
    if mask.shape != (n, n_views):
        raise DataError(f"{where}: the mask must have one row per sample and one column per view, ({n}, {n_views}), "
                        f"got shape {mask.shape}")
    if mask.dtype != np.bool_:
        if mask.dtype.kind not in "iuf" or not np.isin(mask, (0, 1)).all():
            raise DataError(f"{where}: the mask must hold 0/1 or true/false (view present), got dtype {mask.dtype}"
                            f"{'' if mask.dtype.kind not in 'iuf' else ' with other values'}")
        mask = mask.astype(bool)
    empty = np.flatnonzero(~mask.any(1))
    if len(empty):
        raise DataError(f"{where}: {len(empty)} rows have no view present (first: {empty[:5].tolist()}); every "
                        "sample needs at least one view")
    return mask


def _read_csv(path: Path) -> np.ndarray:
    """A numeric CSV (a non-numeric first row is a header; a UTF-8 byte-order mark is ignored) as float64 rows;
    an error names the file and the first bad line."""
    if not path.is_file():
        raise DataError(f"{path}: {'is a folder, not a CSV file' if path.is_dir() else 'file not found'}")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable text CSV ({err})") from None
    names = lines[0].strip().split(",") if lines else []
    header: list[str] | None = names
    try:
        [float(t) for t in names if t.strip()]
        header = None
    except ValueError:
        pass
    rows = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()][0 if header is None else 1:]
    if not rows:
        raise DataError(f"{path}: no data rows")
    cols = len(rows[0][1].split(","))
    if header is not None and len(header) != cols:
        raise DataError(f"{path}: the header has {len(header)} names but the rows have {cols} columns")
    try:
        arr = np.loadtxt([line for _, line in rows], delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        for number, line in rows:
            tokens = line.split(",")
            if len(tokens) != cols:
                raise DataError(f"{path}: line {number} has {len(tokens)} columns, the first data row has "
                                f"{cols}") from None
            for t in tokens:
                try:
                    float(t)
                except ValueError:
                    raise DataError(f"{path}: line {number}: {quote(t.strip(), 40)} is not a number (a numeric CSV, "
                                    "comma-separated, holds numbers only)") from None
        raise DataError(f"{path}: not a numeric CSV") from None
    return arr


@register("csv", "your own views as one CSV per view (data.views=[a.csv,b.csv], data.labels=y.csv)",
          "one CSV per view, rows aligned; optional labels CSV",
          lambda cfg: (bool(cfg.views) and all(Path(p).expanduser().exists() for p in cfg.views),
                       ", ".join(cfg.views) or "set data.views=[a.csv,b.csv]"))
def load_csv(cfg: DataConfig) -> DataSplits:
    if len(cfg.views) < 2:
        raise DataError(f"data.views: the csv data set needs at least 2 CSV files, got {cfg.views}")
    paths = [Path(p).expanduser() for p in cfg.views]
    same = sorted({str(p) for p in paths if sum(q.resolve() == p.resolve() for q in paths) > 1})
    if same:
        raise DataError(f"data.views: {same} given more than once; give each view's CSV once")
    views = [_as_view(_read_csv(p).astype(np.float32), str(p)) for p in paths]
    labels = None
    if cfg.labels:
        lp = Path(cfg.labels).expanduser()
        labels = _as_labels(_read_csv(lp), str(lp))
    names = [p.stem for p in paths]
    if len(set(names)) != len(names):
        names = [f"view{v}" for v in range(len(paths))]
    return _split(views, labels, cfg, "csv", names)

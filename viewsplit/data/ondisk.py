"""The on-disk multi-view format: a folder of ``.npy`` arrays, memory-mapped and streamed in batches.

``data.name=folder data.path=DIR`` reads::

    DIR/view0.npy, view1.npy, …   (N, D) vectors or (N, C, H, W) images; uint8, float16 or float32
    DIR/labels.npy                optional, (N,) integers (−1 = unknown)
    DIR/mask.npy                  optional, (N, V) bool availability mask
    DIR/train_index.npy, test_index.npy   optional, both or neither (else a seeded split)
    DIR/factors_shared.npy, factors_view0.npy, …   optional known factors, (N,) or (N, k)

uint8 views are batched as float32 in [0, 1] (``/ 255``, vectors included), float16 as float32.
``viewsplit convert`` writes the format from an npz, CSVs or a built-in data set, in chunks.

Two paths (``data.stream``): small folders are read into memory as an ordinary
:class:`MultiViewDataset` (the default below ``data.stream_above_mb``); large ones become an
:class:`OnDiskDataset`, whose views stay memory-mapped: a batch reads only its rows, a background
thread reads ``data.prefetch`` batches ahead, and the mapped pages are handed back to the page
cache every ``RELEASE_BYTES`` read, so the process's memory does not grow with N.  Both paths
draw the same epoch order and the same per-rank DDP shards (:meth:`MultiViewDataset.batches`),
so a run gives the same result from either.  Labels, the mask and the split indices are held in
memory (N bytes to 8N bytes each), and so are the known factors (``dataset.factors``: float32 tensors,
``shared``, ``view0``, …).
"""
from __future__ import annotations

import math
import mmap
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .multiview import _UIDS, Batch, DataSplits, LazyView, MultiViewDataset, _as_float
from .registry import DataConfig, folder_at_path, register

VIEW_DTYPES = (np.uint8, np.float16, np.float32)
#: a mapped view hands its pages back to the page cache after this many bytes were read through it
RELEASE_BYTES = 16 << 20
#: bytes a page fault maps from the page cache around the faulting address (Linux fault_around_bytes
#: default): a scattered row costs at least this much resident memory until released
FAULT_AROUND = 64 << 10
T = TypeVar("T")


# ---------------------------------------------------------------------------- mapped arrays
def map_npy(path: Path) -> tuple[np.ndarray, mmap.mmap]:
    """Memory-map a ``.npy`` file read-only; the array and its mapping.

    The header is parsed by ``np.load(mmap_mode="r", allow_pickle=False)`` (object arrays, which
    ragged data becomes, are refused); the data is then mapped with our own ``mmap`` so its pages
    can be released with ``madvise``.
    """
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
        probe = np.load(path, mmap_mode="r", allow_pickle=False) if magic == NPY_MAGIC else None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a .npy file") from None
    except ValueError as err:
        ragged = "allow_pickle" in str(err) or "Python objects" in str(err)
        why = "an object (ragged) array" if ragged else f"not a readable .npy array ({err})"
        raise DataError(f"{path}: {why}; save a rectangular numeric array with np.save") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if not isinstance(probe, np.memmap):
        raise DataError(f"{path}: not a .npy file (it does not start with the .npy header{_looks_like(magic)}); "
                        "save the array with np.save")
    if probe.ndim > 1 and not probe.flags.c_contiguous:
        raise DataError(f"{path}: stored in Fortran order; save it with np.save(np.ascontiguousarray(x))")
    shape, dtype, offset = probe.shape, probe.dtype, probe.offset
    del probe
    size, expected = path.stat().st_size, offset + math.prod(shape) * dtype.itemsize
    if size != expected:
        what = f"{size - expected} bytes past" if size > expected else f"{expected - size} bytes less than"
        raise DataError(f"{path}: holds {what} the {shape} {dtype} array its header describes; the file is "
                        "damaged, truncated or was appended to: save the array again with np.save")
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return np.ndarray(shape, dtype, buffer=mm, offset=offset), mm


#: the first bytes of every .npy file
NPY_MAGIC = b"\x93NUMPY"


def _looks_like(head: bytes) -> str:
    """``"; it looks like text"`` when ``head`` is printable text (a CSV saved as .npy), else ``""``."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return "; it looks like a text file" if text and all(c.isprintable() or c.isspace() for c in text) else ""


class MappedView:
    """The rows ``rows`` (all when None) of a memory-mapped view, indexed like a tensor.

    ``view[index]`` gathers the requested rows in file order (sequential reads), restores the
    requested order and returns a tensor: uint8 as is (batches scale it), float16 as float32.
    Float rows are checked for NaN/Inf as they are read.
    """

    def __init__(self, array: np.ndarray, mapping: mmap.mmap, path: Path, rows: np.ndarray | None = None):
        self.array, self.mapping, self.path, self.rows = array, mapping, path, rows
        self._row_bytes = max(int(np.prod(array.shape[1:])) * array.dtype.itemsize, FAULT_AROUND)
        self._lock = threading.Lock()
        self._since_release = 0

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.array) if self.rows is None else len(self.rows), *self.array.shape[1:])

    def dim(self) -> int:
        return self.array.ndim

    def take(self, index: np.ndarray) -> MappedView:
        """The view restricted to ``index`` (positions in this view), sharing the mapping."""
        index = np.asarray(index, dtype=np.int64)
        return MappedView(self.array, self.mapping, self.path, index if self.rows is None else self.rows[index])

    def __getitem__(self, index: Tensor | np.ndarray) -> Tensor:
        pos = np.asarray(index, dtype=np.int64).reshape(-1)
        rows = pos if self.rows is None else self.rows[pos]
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self.array.shape[1:]), self.array.dtype)
        out[order] = self.array[rows[order]]
        self._released(len(rows))
        x = torch.from_numpy(out)
        if x.dtype == torch.float16:
            x = x.float()
        if x.is_floating_point() and not torch.isfinite(x).all():
            bad = rows[(~torch.isfinite(x.reshape(len(rows), -1))).any(1).numpy()][:5].tolist()
            raise DataError(f"{self.path}: contains NaN or Inf values (rows {bad})")
        return x

    def _released(self, n_rows: int) -> None:
        """Count the bytes read; past ``RELEASE_BYTES``, drop the mapped pages from this process (they
        stay in the page cache), so resident memory stays bounded whatever the file size."""
        with self._lock:
            self._since_release += n_rows * self._row_bytes
            if self._since_release < RELEASE_BYTES or not hasattr(mmap, "MADV_DONTNEED"):
                return
            self._since_release = 0
            self.mapping.madvise(mmap.MADV_DONTNEED)

    def read_all(self) -> Tensor:
        return self[np.arange(self.shape[0])]


# ---------------------------------------------------------------------------- the data set
@dataclass
class OnDiskDataset(MultiViewDataset):
    """A :class:`MultiViewDataset` whose views are read when a batch needs them: :class:`MappedView` s of
    ``.npy`` files, or :class:`~viewsplit.data.decoded.DecodedView` s of image files (COIL, Office-31).

    Batching, epoch order and DDP sharding are the in-memory data set's; ``batches`` additionally
    reads ``prefetch`` batches ahead in a background thread.  Known factors (small) are held in memory.
    """

    prefetch: int = 2

    def __post_init__(self) -> None:
        self.uid = next(_UIDS)
        if self.view_names is None:
            self.view_names = [f"view{v}" for v in range(len(self.views))]
        n = self.views[0].shape[0]
        if self.mask is None:
            self.mask = torch.ones(n, len(self.views), dtype=torch.bool)
        if any(v.shape[0] != n for v in self.views) or (self.labels is not None and len(self.labels) != n):
            raise DataError(f"data set {self.name!r}: views and labels disagree in length")
        m = self.mask
        if not isinstance(m, Tensor) or m.dtype != torch.bool or tuple(m.shape) != (n, len(self.views)):
            got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
            raise DataError(f"data set {self.name!r}: mask must be a bool tensor of shape ({n}, {len(self.views)}), "
                            f"got {got}")
        empty = (~m.any(1)).nonzero()[:5, 0].tolist()
        if empty:   # as validate() refuses them in memory
            raise DataError(f"data set {self.name!r}: mask rows with no view present (every sample needs >= 1 view): "
                            f"{empty}")

    def lazy_views(self) -> list[LazyView]:
        """The views, as the lazy views they are (``views`` is typed as the tensors they stand in for)."""
        return cast("list[LazyView]", self.views)

    def subset(self, index: Tensor | np.ndarray | Sequence[int]) -> OnDiskDataset:
        idx = np.asarray(index, dtype=np.int64)
        t = torch.from_numpy(idx)
        assert self.mask is not None   # __post_init__ sets it
        return OnDiskDataset(as_views([v.take(idx) for v in self.lazy_views()]),
                             None if self.labels is None else self.labels[t], list(self.view_names or []),
                             self.mask[t], self.name,
                             None if self.factors is None else {k: f[t] for k, f in self.factors.items()},
                             prefetch=self.prefetch)

    def with_mask(self, mask: Tensor) -> OnDiskDataset:
        return OnDiskDataset(self.views, self.labels, list(self.view_names or []), mask, self.name, self.factors,
                             prefetch=self.prefetch)

    def batches(self, batch_size: int, **kwargs: Any) -> Iterator[Batch]:
        """:meth:`MultiViewDataset.batches`, read ``prefetch`` batches ahead by a background thread."""
        plain = super().batches(batch_size, **kwargs)
        return prefetch(plain, self.prefetch) if self.prefetch > 0 else plain

    def stack_views_float(self) -> list[Tensor]:
        """Every view read into memory as float32 (only for splits that fit in memory)."""
        return [_as_float(v.read_all()) for v in self.lazy_views()]


def as_views(views: Sequence[LazyView]) -> list[Tensor]:
    """Lazy views for the ``views`` of an :class:`OnDiskDataset`, which batches index like tensors."""
    return cast("list[Tensor]", list(views))


class _Raised:
    def __init__(self, err: BaseException):
        self.err = err


_END = object()


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order while a daemon thread produces up to ``depth`` of them ahead.

    An exception in the producer is re-raised in the consumer; closing the consumer early (a
    ``break``, an error in training) stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as err:  # handed to the consumer, which raises it
            put(_Raised(err))

    thread = threading.Thread(target=work, name="viewsplit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.err
            yield item
    finally:
        stop.set()
        thread.join()


# ---------------------------------------------------------------------------- reading a folder
@dataclass
class Folder:
    """A validated folder: mapped views, in-memory labels / mask / indices, mapped factors."""

    path: Path
    views: list[tuple[np.ndarray, mmap.mmap, Path]]
    labels: np.ndarray | None
    mask: np.ndarray | None
    train_index: np.ndarray | None
    test_index: np.ndarray | None
    factors: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.views[0][0])

    @property
    def view_bytes(self) -> int:
        return sum(a.nbytes for a, _, _ in self.views)


def read_npy(path: Path) -> np.ndarray:
    """A small ``.npy`` file read into memory, checked as :func:`map_npy` checks it (no pickles, no stray bytes)."""
    arr, _ = map_npy(path)
    return np.array(arr)


def _small(path: Path, kinds: str, what: str) -> np.ndarray:
    arr, _ = map_npy(path)
    if arr.dtype.kind not in kinds:
        raise DataError(f"{path}: {what} must have dtype kind {kinds!r}, got {arr.dtype}")
    return np.array(arr)


def open_folder(path: str | Path) -> Folder:
    """Validate a folder of the format and map it; a :class:`DataError` names the file at fault."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (data.path of the folder data set)")
    files = {p.name: p for p in root.glob("*.npy")}
    names = sorted((f for f in files if f.startswith("view") and f[4:-4].isdigit()), key=lambda f: int(f[4:-4]))
    if [int(f[4:-4]) for f in names] != list(range(len(names))):
        raise DataError(f"{root}: view files must be view0.npy, view1.npy, … without gaps; found {names}")
    if len(names) < 2:
        raise DataError(f"{root}: a multi-view folder needs at least view0.npy and view1.npy; found {names}")
    n_views = len(names)
    factor_names = ["factors_shared.npy"] + [f"factors_view{v}.npy" for v in range(n_views)]
    known = {*names, "labels.npy", "mask.npy", "train_index.npy", "test_index.npy", *factor_names}
    unknown = sorted(set(files) - known)
    if unknown:
        raise DataError(f"{root}: unknown arrays {unknown}; expected view0.npy …, labels.npy, mask.npy, "
                        "train_index.npy, test_index.npy, factors_shared.npy, factors_view<v>.npy")
    views: list[tuple[np.ndarray, mmap.mmap, Path]] = []
    for f in names:
        arr, mm = map_npy(files[f])
        if arr.dtype not in VIEW_DTYPES:
            raise DataError(f"{files[f]}: dtype must be uint8, float16 or float32, got {arr.dtype}")
        if arr.ndim not in (2, 4) or any(s == 0 for s in arr.shape):
            raise DataError(f"{files[f]}: expected a non-empty (N, D) vector or (N, C, H, W) image array, "
                            f"got shape {arr.shape}")
        if views and len(arr) != len(views[0][0]):
            raise DataError(f"{files[f]}: has {len(arr)} samples but {names[0]} has {len(views[0][0])}")
        views.append((arr, mm, files[f]))
    n = len(views[0][0])

    def rows_of(fname: str, arr: np.ndarray, shape: tuple) -> np.ndarray:
        if arr.shape != shape:
            raise DataError(f"{files[fname]}: expected shape {shape} for {n} samples, got {arr.shape}")
        return arr

    labels = mask = None
    if "labels.npy" in files:
        labels = rows_of("labels.npy", _small(files["labels.npy"], "iu", "labels"), (n,)).astype(np.int64)
        if (labels < -1).any():
            raise DataError(f"{files['labels.npy']}: labels must be >= 0 (or -1 for unknown)")
    if "mask.npy" in files:
        mask = rows_of("mask.npy", _small(files["mask.npy"], "b", "the mask"), (n, n_views))
        if not mask.any(1).all():
            raise DataError(f"{files['mask.npy']}: rows with no view present: {np.flatnonzero(~mask.any(1))[:5]}")
    if ("train_index.npy" in files) != ("test_index.npy" in files):
        raise DataError(f"{root}: give both train_index.npy and test_index.npy, or neither")
    index = {}
    for key in ("train_index", "test_index"):
        if f"{key}.npy" in files:
            idx = _small(files[f"{key}.npy"], "iu", key).astype(np.int64)
            if idx.ndim != 1 or len(idx) == 0 or idx.min() < 0 or idx.max() >= n:
                raise DataError(f"{files[f'{key}.npy']}: must be a non-empty 1-d array of sample indices in [0, {n})")
            index[key] = idx
    factors = {}
    for fname in factor_names:
        if fname in files:
            arr, _ = map_npy(files[fname])
            if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or len(arr) != n:
                raise DataError(f"{files[fname]}: factors must be a numeric (N,) or (N, k) array with N = {n}, "
                                f"got {arr.dtype} {arr.shape}")
            factors[fname[len("factors_"):-4]] = arr if arr.ndim == 2 else arr[:, None]
    return Folder(root, views, labels, mask, index.get("train_index"), index.get("test_index"), factors)


def folder_dataset(folder: Folder, stream: bool, prefetch_depth: int = 2) -> MultiViewDataset:
    """The whole folder as one data set: mapped (``stream``) or read into memory."""
    names = [p.stem for _, _, p in folder.views]
    labels = None if folder.labels is None else torch.from_numpy(folder.labels)
    mask = None if folder.mask is None else torch.from_numpy(folder.mask)
    factors = {k: torch.tensor(np.asarray(f), dtype=torch.float32) for k, f in folder.factors.items()} or None
    if stream:
        return OnDiskDataset(as_views([MappedView(a, mm, p) for a, mm, p in folder.views]), labels, names, mask,
                             folder.path.name, factors, prefetch=prefetch_depth)
    views = [MappedView(a, mm, p).read_all() for a, mm, p in folder.views]
    return MultiViewDataset(views, labels, names, mask, name=folder.path.name, factors=factors)


@register("folder", "your own views as a folder of .npy arrays, memory-mapped (data.path=DIR; viewsplit convert)",
          "view0.npy, view1.npy, … (+ labels, mask, train/test_index, factors_*)",
          folder_at_path("set data.path=DIR (a folder written by viewsplit convert)"))
def load_folder(cfg: DataConfig) -> DataSplits:
    from .user import split_indices

    if not cfg.path:
        raise DataError("data.path: the folder data set needs data.path=DIR")
    folder = open_folder(cfg.path)
    stream = cfg.stream if cfg.stream is not None else folder.view_bytes > cfg.stream_above_mb * (1 << 20)
    full = folder_dataset(folder, stream, cfg.prefetch)
    train_idx, test_idx, info = split_indices(full.labels, len(full), cfg, str(folder.path), folder.train_index,
                                              folder.test_index)
    train, test = full.subset(train_idx), full.subset(test_idx)
    info.update(storage="memory-mapped, streamed" if stream else "read into memory", folder=str(folder.path))
    return DataSplits(train, test, cluster_on="test", info=info)

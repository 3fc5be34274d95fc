"""``viewsplit convert``: write the on-disk folder format (:mod:`viewsplit.data.ondisk`) in chunks.

Sources: an ``.npz`` (its members are read in chunks straight from the archive, compressed or
not), one CSV per view (+ a labels CSV), or a built-in data set (train then test samples, with
``train_index``/``test_index``).  Each array is written through a plain file handle, ``chunk``
rows at a time, to ``NAME.npy.tmp`` and renamed when complete, so neither the source nor the
output is ever held whole in memory (built-in data sets are loaded by their own loaders first; image
folders loaded with ``data.stream=true`` are decoded ``chunk`` rows at a time).

dtypes: views keep uint8 images, float16 and float32; other numeric views become float32 (uint8
*vectors* too, so that an npz converts to the values the npz loader gives); labels and indices
become int64, the mask bool, factors float32.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError, quote
from ..files import make_dirs, remove_dirs
from ..typed import from_dict

if TYPE_CHECKING:
    from torch import Tensor

#: an array to write: its shape, dtype, and a function returning its row chunks
Source = tuple[tuple[int, ...], np.dtype, Callable[[], Iterable[np.ndarray]]]
#: the dtype write_npy_rows stores by default
FLOAT32 = np.dtype(np.float32)


class NpyWriter:
    """One C-order ``.npy`` file written row chunk by row chunk through a plain file handle.

    The header for the final ``shape`` is written first, then each chunk's bytes are appended (no memory
    map, so the writer holds one chunk whatever the file size).  The file is ``NAME.npy.tmp`` until
    :meth:`close` checks the row count and renames it, so a failed write leaves no half-written ``NAME.npy``
    (and an existing one is replaced only by a complete file).  A context manager: an exception aborts.
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.rows = 0
        self._fh = open(self.tmp, "wb")  # noqa: SIM115  (held across write() calls; closed by close/abort)
        np.lib.format.write_array_header_1_0(
            self._fh, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape})

    def write(self, chunk: np.ndarray) -> None:
        """Append the rows of ``chunk`` (cast to the file's dtype)."""
        chunk = np.asarray(chunk)
        if chunk.shape[1:] != self.shape[1:]:
            self.abort()
            raise DataError(f"{self.path.name}: a chunk has rows of shape {chunk.shape[1:]}, expected {self.shape[1:]}")
        if self.rows + len(chunk) > self.shape[0]:
            self.abort()
            raise DataError(f"{self.path.name}: more than the {self.shape[0]} rows announced")
        np.ascontiguousarray(chunk, dtype=self.dtype).tofile(self._fh)
        self.rows += len(chunk)

    def close(self) -> Path:
        """Finish the file: check that every row was written and rename it into place."""
        self._fh.close()
        if self.rows != self.shape[0]:
            self.tmp.unlink(missing_ok=True)
            raise DataError(f"{self.path.name}: wrote {self.rows} rows, expected {self.shape[0]}")
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._fh.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._fh.closed:
            self.close()


def write_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype, chunks: Iterable[np.ndarray]) -> None:
    """Write row chunks as one C-order ``.npy`` file (atomically); check every chunk's shape and the row count."""
    with NpyWriter(path, shape, dtype) as out:
        for chunk in chunks:
            out.write(chunk)


def write_npy_rows(folder: str | Path, n: int, batches: Iterable[dict[str, np.ndarray]],
                   dtype: np.dtype = FLOAT32) -> dict[str, tuple[int, ...]]:
    """Stream row batches of several arrays (name → ``(B, ...)`` rows, the same names in every batch) into
    ``folder/NAME.npy``, ``n`` rows each, with one :class:`NpyWriter` per name: memory holds one batch.

    The folder is created at the first batch; a file of the same name is replaced when its new content
    is complete.  Returns each array's shape.
    """
    folder = Path(folder).expanduser()
    writers: dict[str, NpyWriter] = {}
    created: list[Path] = []
    try:
        for batch in batches:
            if not writers:
                created = make_dirs(folder)
                writers = {k: NpyWriter(folder / f"{k}.npy", (n, *np.shape(v)[1:]), dtype) for k, v in batch.items()}
            if batch.keys() != writers.keys():
                raise DataError(f"{folder}: a batch holds arrays {sorted(batch)}, the first held {sorted(writers)}")
            for k, v in batch.items():
                writers[k].write(v)
        short = {k: w.rows for k, w in writers.items() if w.rows != n}
        if short:
            raise DataError(f"{folder}: wrote {short} rows, expected {n} each")
    except BaseException:
        for w in writers.values():
            w.abort()
        remove_dirs(created)
        raise
    for w in writers.values():
        w.close()
    return {k: w.shape for k, w in writers.items()}


def write_folder(out: str | Path, arrays: dict[str, Source]) -> Path:
    """Write every array of ``arrays`` (name → source) as ``out/NAME.npy``; refuses a folder holding .npy files.

    Each file is written under a temporary name and renamed when complete; when any array fails (or the
    result does not read back), the files written and the folders created are removed, so a retry into
    the same folder works."""
    out = Path(out).expanduser()
    if out.exists() and any(out.glob("*.npy")):
        raise DataError(f"{out}: already holds .npy files; convert into a new or empty folder")
    from .ondisk import open_folder

    created = make_dirs(out)
    written: list[Path] = []
    try:
        for name, (shape, dtype, chunks) in arrays.items():
            write_npy(out / f"{name}.npy", shape, dtype, chunks())
            written.append(out / f"{name}.npy")
        open_folder(out)  # the result must read back
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        remove_dirs(created)
        raise
    return out


def target_dtype(name: str, dtype: np.dtype, ndim: int, where: str) -> np.dtype:
    """The dtype ``name`` is stored with (module docstring)."""
    if dtype.kind not in "biuf":
        raise DataError(f"{where}: must be numeric, got dtype {dtype}")
    if name.startswith("view"):
        keep = dtype in (np.float16, np.float32) or (dtype == np.uint8 and ndim == 4)
        return dtype if keep else np.dtype(np.float32)
    if name in ("labels", "train_index", "test_index"):
        if dtype.kind == "f":
            raise DataError(f"{where}: {name} must be integers, got dtype {dtype}")
        return np.dtype(np.int64)
    if name == "mask":
        return np.dtype(bool)
    return np.dtype(np.float32)


def _chunks_of(array: np.ndarray | Tensor, chunk: int) -> Callable[[], Iterator[np.ndarray]]:
    return lambda: (np.asarray(array[i: i + chunk]) for i in range(0, array.shape[0], chunk))


# ---------------------------------------------------------------------------- npz
def _npz_member(zf: zipfile.ZipFile, member: str, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    with zf.open(member) as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
        except ValueError as err:
            raise DataError(f"{where}: not a .npy member ({err})") from None
        if fortran and len(shape) > 1:
            raise DataError(f"{where}: stored in Fortran order; save it in C order")
        if dtype.hasobject:
            raise DataError(f"{where}: an object (ragged) array; save rectangular numeric arrays")
        return shape, dtype, fh.tell()


def npz_sources(path: str | Path, chunk: int) -> dict[str, Source]:
    """The arrays of an npz (view0…, labels, mask, train/test_index, factors_*), read in chunks."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from None
    members = {m[:-4]: m for m in zf.namelist() if m.endswith(".npy")}
    views = sorted((k for k in members if k.startswith("view") and k[4:].isdigit()), key=lambda k: int(k[4:]))
    allowed = {*views, "labels", "mask", "train_index", "test_index", "factors_shared",
               *(f"factors_view{v}" for v in range(len(views)))}
    unknown = sorted(set(members) - allowed)
    if unknown:
        raise DataError(f"{path}: unknown arrays {unknown}; expected view0, view1, …, labels, mask, train_index, "
                        "test_index, factors_shared, factors_view<v>")
    out: dict[str, Source] = {}
    for name in [*views, *sorted(set(members) - set(views))]:
        where = f"{path}: array {name!r}"
        shape, dtype, offset = _npz_member(zf, members[name], where)
        if len(shape) == 0:
            raise DataError(f"{where}: a scalar, expected one row per sample")
        out[name] = (shape, target_dtype(name, dtype, len(shape), where),
                     _npz_reader(path, members[name], shape, dtype, offset, chunk))
    return out


def _npz_reader(path: Path, member: str, shape: tuple[int, ...], dtype: np.dtype, offset: int,
                chunk: int) -> Callable[[], Iterator[np.ndarray]]:
    row_bytes = int(np.prod(shape[1:])) * dtype.itemsize

    def read() -> Iterator[np.ndarray]:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            fh.read(offset)
            for start in range(0, shape[0], chunk):
                rows = min(chunk, shape[0] - start)
                buf = fh.read(rows * row_bytes)
                if len(buf) != rows * row_bytes:
                    raise DataError(f"{path}: array {member[:-4]!r} is truncated")
                yield np.frombuffer(buf, dtype).reshape(rows, *shape[1:])

    return read


# ---------------------------------------------------------------------------- CSV
def _csv_layout(path: Path) -> tuple[int, int, int]:
    """(header lines, data rows, columns) of a numeric CSV; a header must name every column."""
    if not path.is_file():
        raise DataError(f"{path}: {'is a folder, not a CSV file' if path.is_dir() else 'file not found'}")
    try:
        with open(path, encoding="utf-8-sig") as fh:   # utf-8-sig: a byte-order mark is not a header
            first = fh.readline()
            try:
                cols = len([float(t) for t in first.strip().split(",") if t.strip()])
                skip = 0
            except ValueError:
                skip, cols = 1, len(first.split(","))
            rows, data_cols = (0, None) if skip else (1 if first.strip() else 0, cols)
            for line in fh:
                if line.strip():
                    rows += 1
                    data_cols = len(line.split(",")) if data_cols is None else data_cols
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable text CSV ({err})") from None
    if rows == 0:
        raise DataError(f"{path}: no data rows")
    if data_cols is not None and data_cols != cols:
        raise DataError(f"{path}: the header has {cols} names but the rows have {data_cols} columns")
    return skip, rows, cols


def _csv_reader(path: Path, skip: int, chunk: int, cols: int) -> Callable[[], Iterator[np.ndarray]]:
    def read() -> Iterator[np.ndarray]:
        with open(path, encoding="utf-8-sig") as fh:
            for _ in range(skip):
                fh.readline()
            lines: list[tuple[int, str]] = []
            for number, line in enumerate(fh, start=skip + 1):
                if line.strip():
                    lines.append((number, line))
                if len(lines) == chunk:
                    yield _parse(lines, path, cols)
                    lines = []
            if lines:
                yield _parse(lines, path, cols)

    return read


def _parse(lines: list[tuple[int, str]], path: Path, cols: int) -> np.ndarray:
    """Numbered CSV lines as a ``(rows, cols)`` array; an error names the file and the first bad line."""
    try:
        arr = np.loadtxt([line for _, line in lines], delimiter=",", ndmin=2, dtype=np.float64)
        if arr.shape[1] == cols:
            return arr
    except ValueError:
        pass
    for number, line in lines:
        tokens = line.strip().split(",")
        if len(tokens) != cols:
            raise DataError(f"{path}: line {number} has {len(tokens)} columns, the file's first row has {cols}")
        for t in tokens:
            try:
                float(t)
            except ValueError:
                raise DataError(f"{path}: line {number}: {quote(t.strip(), 40)} is not a number "
                                "(a numeric CSV holds numbers only)") from None
    raise DataError(f"{path}: not a numeric CSV")   # pragma: no cover - loadtxt and the line checks agree


def csv_sources(views: list[str], labels: str | None, chunk: int) -> dict[str, Source]:
    """One CSV per view (rows aligned) and an optional labels CSV, read ``chunk`` rows at a time."""
    if len(views) < 2:
        raise DataError(f"--csv: need at least 2 CSV files (one per view), got {views}")
    out: dict[str, Source] = {}
    files = [(f"view{v}", Path(p).expanduser()) for v, p in enumerate(views)]
    if labels:
        files.append(("labels", Path(labels).expanduser()))
    layouts = {name: (path, *_csv_layout(path)) for name, path in files}
    counts = {str(path): rows for path, _, rows, _ in layouts.values()}
    if len(set(counts.values())) > 1:
        raise DataError(f"--csv/--labels: the files must have one row per sample, aligned, but their data rows "
                        f"differ: {quote(counts, 600)}")
    for name, (path, skip, rows, cols) in layouts.items():
        shape = (rows,) if name == "labels" else (rows, cols)
        reader = _csv_reader(path, skip, chunk, cols)
        if name == "labels":
            out[name] = (shape, np.dtype(np.int64), _as_labels(reader, path))
        else:
            out[name] = (shape, np.dtype(np.float32), reader)
    return out


def _as_labels(reader: Callable[[], Iterator[np.ndarray]], path: Path) -> Callable[[], Iterator[np.ndarray]]:
    def read() -> Iterator[np.ndarray]:
        for c in reader():
            if c.shape[1] != 1 or not np.all(c == np.round(c)):
                raise DataError(f"{path}: labels must be one integer per row")
            yield c[:, 0]

    return read


# ---------------------------------------------------------------------------- built-in data sets
def dataset_sources(name: str, overrides: dict, chunk: int) -> dict[str, Source]:
    """A built-in data set's train then test samples, with train_index / test_index."""
    from .registry import DataConfig, load_dataset

    cfg = from_dict(DataConfig, {**overrides, "name": name}, "data")
    splits = load_dataset(cfg)
    train, test = splits.train, splits.test
    n_tr, n = len(train), len(train) + len(test)
    out: dict[str, Source] = {}
    for v, (a, b) in enumerate(zip(train.views, test.views)):
        arr = np.asarray(a[:1].numpy())
        out[f"view{v}"] = ((n, *a.shape[1:]), target_dtype("view", arr.dtype, arr.ndim, f"view {v}"),
                           _concat_chunks(a, b, chunk))
    if train.labels is not None and test.labels is not None:
        out["labels"] = ((n,), np.dtype(np.int64), _concat_chunks(train.labels, test.labels, chunk))
    assert train.mask is not None and test.mask is not None   # validate() sets them
    if not (bool(train.mask.all()) and bool(test.mask.all())):
        out["mask"] = ((n, train.n_views), np.dtype(bool), _concat_chunks(train.mask, test.mask, chunk))
    out["train_index"] = ((n_tr,), np.dtype(np.int64), _chunks_of(np.arange(n_tr), chunk))
    out["test_index"] = ((n - n_tr,), np.dtype(np.int64), _chunks_of(np.arange(n_tr, n), chunk))
    tr_f, te_f = getattr(train, "factors", None) or {}, getattr(test, "factors", None) or {}
    for key in tr_f.keys() & te_f.keys():
        fa, fb = np.asarray(tr_f[key]), np.asarray(te_f[key])
        out[f"factors_{key}"] = ((n, *fa.shape[1:]), np.dtype(np.float32), _concat_chunks(fa, fb, chunk))
    return out


def _concat_chunks(a: np.ndarray | Tensor, b: np.ndarray | Tensor, chunk: int) -> Callable[[], Iterator[np.ndarray]]:
    def read() -> Iterator[np.ndarray]:
        for part in (a, b):
            yield from _chunks_of(part, chunk)()

    return read

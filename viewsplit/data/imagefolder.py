"""A user's own multi-view image folders: ``data.name=imagefolder data.path=DIR``.

Layout::

    DIR/<view>/<class>/<file>    e.g. DIR/rgb/cat/0001.jpg and DIR/depth/cat/0001.png
    DIR/split.csv                optional: one ``<class>/<stem>,train`` or ``…,test`` row per sample

One sub-folder per view (``data.views=[rgb,depth]`` chooses and orders them; default every sub-folder,
sorted by name), class sub-folders as in torchvision's ``ImageFolder`` (folders inside a class are
walked too; hidden files and non-image files are skipped).  A sample is a file's path relative to its
view folder without the extension, ``<class>/<stem>``: the files of one sample in different views
share it (their extensions may differ).  Samples are in sorted order; labels are the sorted class
names → 0 … K−1, kept as ``class_names`` in the split info (the report's ``protocol.data``).  A sample
with no file in some view has that view missing (mask False, zeros in the view), as incomplete data
everywhere in viewsplit (docs/evaluation.md#missing-views); a class present in one view only just gives such samples.

Images are resized to ``data.image_size`` × ``data.image_size`` (antialiased; the aspect ratio is not
kept), with 1 (grey) or 3 (RGB) channels per view: ``data.channels``, or from the view's first image
(grey for ``1``/``L``/``LA`` modes, else RGB).  Only 8-bit images are decoded.

Split: ``split.csv`` when present, else the seeded stratified split of the other user data
(``data.test_fraction``, ``data.seed``; :func:`viewsplit.data.user.split_indices`).
Storage as COIL's (:mod:`viewsplit.data.images`): decoded once into memory (and cached) for small sets;
with ``data.stream`` (or when the decoded views would exceed ``data.stream_above_mb``) the views keep
file paths and each batch decodes its own rows in the prefetch thread
(:class:`~viewsplit.data.decoded.DecodedView`), giving the same batches.
"""
from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, DataWarning
from .decoded import DecodedView, decode, require_eight_bit
from .multiview import DataSplits, MultiViewDataset
from .ondisk import OnDiskDataset, as_views
from .registry import DataConfig, cached, file_fingerprint, folder_at_path, register
from .user import split_indices

#: the file extensions read as images (torchvision's ``IMG_EXTENSIONS``)
IMG_EXT = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLIT_FILE = "split.csv"


@dataclass
class Layout:
    """A scanned image folder: sample keys, labels, and per view its files and each sample's file (−1 = none)."""

    root: Path
    view_names: list[str]
    keys: list[str]
    labels: np.ndarray
    class_names: list[str]
    files: list[list[Path]]
    file_of: list[np.ndarray]

    @property
    def mask(self) -> np.ndarray:
        return np.stack([f >= 0 for f in self.file_of], axis=1)


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMG_EXT)


def scan_view(folder: Path) -> dict[str, Path]:
    """``{"<class>/<stem>": file}`` for the images under ``folder``'s class sub-folders."""
    loose = sorted(p.name for p in folder.iterdir() if p.is_file() and _is_image(p.name))
    if loose:
        raise DataError(f"{folder}: image {loose[0]!r} is not in a class sub-folder; expected "
                        f"{folder}/<class>/<file>")
    out: dict[str, Path] = {}
    for cls in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for here, dirs, names in os.walk(cls, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in names if _is_image(n)):
                path = Path(here) / name
                key = path.relative_to(folder).with_suffix("").as_posix()
                if key in out:
                    raise DataError(f"{folder}: {out[key].name!r} and {path.name!r} in {path.parent} are the same "
                                    f"sample {key!r}; keep one file per sample and view")
                out[key] = path
    if not out:
        raise DataError(f"{folder}: no images ({', '.join(IMG_EXT)}) in class sub-folders; expected "
                        f"{folder}/<class>/<file>")
    return out


def view_folders(root: Path, chosen: list[str]) -> list[Path]:
    """The view folders: ``chosen`` in that order, else every non-hidden sub-folder sorted by name."""
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if chosen:
        unknown = [v for v in chosen if v not in found]
        if unknown or len(set(chosen)) != len(chosen):
            raise DataError(f"data.views: {unknown or chosen} must name distinct sub-folders of {root}; found "
                            f"{found}")
        found = list(chosen)
    if len(found) < 2:
        raise DataError(f"{root}: a multi-view image folder needs at least 2 view folders ({root}/<view>/<class>/"
                        f"<file>); found {found or 'none'}")
    return [root / v for v in found]


def check_case(folders: list[Path], per_view: list[dict[str, Path]]) -> None:
    """Refuse class folders, and warn of sample files, whose names differ only in case (``cat`` and ``Cat``): they
    would become separate classes, or samples present in one view each, without a word."""
    spellings: dict[str, dict[str, list[str]]] = {}
    for folder, found in zip(folders, per_view):
        for cls in sorted({k.split("/", 1)[0] for k in found}):
            spellings.setdefault(cls.casefold(), {}).setdefault(cls, []).append(folder.name)
    clash = next((s for s in spellings.values() if len(s) > 1), None)
    if clash:
        where = ", ".join(f"{folder}/{cls}" for cls, views in clash.items() for folder in views)
        raise DataError(f"{folders[0].parent}: class folders {where} differ only in case; they would be separate "
                        "classes (and samples seen in one view only): give a class the same name in every view")
    keys: dict[str, set[str]] = {}
    for found in per_view:
        for k in found:
            keys.setdefault(k.casefold(), set()).add(k)
    odd = sorted(sorted(s) for s in keys.values() if len(s) > 1)
    if odd:
        warnings.warn(f"{folders[0].parent}: {len(odd)} sample(s) have file names that differ only in case across "
                      f"views (e.g. {' / '.join(odd[0])}); they are different samples, each missing from the other "
                      "views: rename the files if they are the same sample", DataWarning, stacklevel=3)


def scan(root: Path, chosen: list[str]) -> Layout:
    """Scan ``root`` (module docstring); a :class:`DataError` names the folder or file at fault."""
    folders = view_folders(root, chosen)
    per_view = [scan_view(f) for f in folders]
    check_case(folders, per_view)
    keys = sorted(set().union(*per_view))
    pos = {k: i for i, k in enumerate(keys)}
    files, file_of = [], []
    for found in per_view:
        fo = np.full(len(keys), -1, dtype=np.int64)
        fo[[pos[k] for k in found]] = np.arange(len(found))
        files.append(list(found.values()))
        file_of.append(fo)
    classes = [k.split("/", 1)[0] for k in keys]
    names = sorted(set(classes))
    labels = np.searchsorted(names, classes).astype(np.int64)
    layout = Layout(root, [f.name for f in folders], keys, labels, names, files, file_of)
    if layout.mask.sum(1).max() < 2:
        raise DataError(f"{root}: no sample has a file in two views, so the views share nothing; a sample's files "
                        f"must have the same <class>/<stem> in every view folder (e.g. {folders[0].name}/{keys[0]}.*"
                        f" and {folders[1].name}/{keys[0]}.*)")
    return layout


def image_channels(path: Path) -> int:
    """1 for a grey image (PIL mode ``1``, ``L``, ``LA``), else 3; a 16-bit or float image is refused here already
    (:func:`~viewsplit.data.decoded.require_eight_bit`), so that such a view fails before training."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("decoding image files needs Pillow: pip install 'viewsplit[images]'") from None
    try:
        with Image.open(path) as im:
            mode = im.mode
    except OSError as err:
        raise DataError(f"{path}: cannot decode image ({err})") from None
    require_eight_bit(path, mode)
    return 1 if mode in ("1", "L", "LA", "La") else 3


def view_channels(layout: Layout, channels: int | list[int] | None) -> list[int]:
    """``data.channels`` for every view (one value, or one per view), else each view's first image's; every
    view's first image is opened (its header only) either way."""
    found = [image_channels(f[0]) for f in layout.files]
    if channels is None:
        return found
    if isinstance(channels, int):
        return [channels] * len(layout.files)
    if len(channels) != len(layout.files):
        raise DataError(f"data.channels: {len(channels)} values for {len(layout.files)} views "
                        f"{layout.view_names}; give one value, or one per view")
    return list(channels)


def read_split(path: Path, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices from ``split.csv`` rows ``<class>/<stem>,train|test`` (an optional header row
    is skipped; a sample may be written with its file extension).  Every sample needs exactly one row."""
    pos = {k: i for i, k in enumerate(keys)}
    split = np.full(len(keys), -1, dtype=np.int64)
    try:
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable text CSV ({err})") from None
    for line, row in enumerate(rows, 1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if len(cells) != 2 or cells[1].lower() not in ("train", "test"):
            if line == 1:
                continue   # a header
            raise DataError(f"{path}, line {line}: expected '<class>/<stem>,train' or '…,test', got {row}")
        key = cells[0].replace("\\", "/")
        key = key[: -len(Path(key).suffix)] if key.lower().endswith(IMG_EXT) else key
        if key not in pos:
            raise DataError(f"{path}, line {line}: {cells[0]!r} is not a sample (no view has a file {key}.*)")
        if split[pos[key]] >= 0:
            raise DataError(f"{path}, line {line}: sample {key!r} is listed twice")
        split[pos[key]] = cells[1].lower() == "test"
    unlisted = np.flatnonzero(split < 0)
    if len(unlisted):
        raise DataError(f"{path}: no train/test row for {len(unlisted)} samples (first: "
                        f"{[keys[i] for i in unlisted[:3]]}); every sample needs one")
    for value, name in ((0, "train"), (1, "test")):
        if not (split == value).any():
            raise DataError(f"{path}: puts no sample in {name}")
    return np.flatnonzero(split == 0), np.flatnonzero(split == 1)


def streams(cfg: DataConfig, n: int, channels: list[int]) -> bool:
    """``data.stream``; unset, whether the decoded views would hold more than ``data.stream_above_mb`` MiB."""
    if cfg.stream is not None:
        return cfg.stream
    return n * sum(channels) * cfg.image_size**2 > cfg.stream_above_mb * (1 << 20)


def eager_view(files: list[Path], file_of: np.ndarray, channels: int, size: int, cache: bool) -> torch.Tensor:
    """Every file decoded once (and cached) and put at its sample's row; zeros for samples without a file."""
    key = f"imagefolder-v1-{file_fingerprint(files)}-{channels}x{size}"
    imgs = cached(key, lambda: {"images": decode(files, channels, size)}, cache)["images"]
    view = torch.zeros(len(file_of), channels, size, size, dtype=torch.uint8)
    view[torch.from_numpy(file_of >= 0)] = imgs[torch.from_numpy(file_of[file_of >= 0])]
    return view


@register("imagefolder", "your own image folders, one per view: DIR/<view>/<class>/<file> (data.path=DIR)",
          "one view per sub-folder; samples matched by <class>/<stem>; data.image_size (64) square",
          folder_at_path("set data.path=DIR (DIR/<view>/<class>/<file>)"))
def load_imagefolder(cfg: DataConfig) -> DataSplits:
    if not cfg.path:
        raise DataError("data.path: the imagefolder data set needs data.path=DIR (DIR/<view>/<class>/<file>)")
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: {'not a folder' if root.exists() else 'folder not found'} (data.path of "
                        "imagefolder)")
    layout = scan(root, cfg.views)
    chans, size, n = view_channels(layout, cfg.channels), cfg.image_size, len(layout.keys)
    labels, mask = torch.from_numpy(layout.labels), torch.from_numpy(layout.mask)
    stream = streams(cfg, n, chans)
    if stream:
        views = as_views([DecodedView(f, fo, c, size) for f, fo, c in zip(layout.files, layout.file_of, chans)])
        ds: MultiViewDataset = OnDiskDataset(views, labels, layout.view_names, mask, root.name, prefetch=cfg.prefetch)
    else:
        views = [eager_view(f, fo, c, size, cfg.cache) for f, fo, c in zip(layout.files, layout.file_of, chans)]
        ds = MultiViewDataset(views, labels, layout.view_names, mask, name=root.name)
    given: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if (root / SPLIT_FILE).is_file():
        given = read_split(root / SPLIT_FILE, layout.keys)
    tr, te, info = split_indices(labels, n, cfg, str(root), *given)
    if given[0] is not None:
        info["split"] = f"given by {root / SPLIT_FILE}"
    info.update(source=str(root), class_names=layout.class_names, image_size=size, channels=chans,
                storage="image files decoded per batch, streamed" if stream else "decoded into memory",
                view_samples=dict(zip(layout.view_names, layout.mask.sum(0).tolist())),
                complete_samples=int(layout.mask.all(1).sum()))
    return DataSplits(ds.subset(tr), ds.subset(te), cluster_on="test", info=info)

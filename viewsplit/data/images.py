"""COIL-20, COIL-100 and Office-31 from their original folder layouts (docs/datasets.md#coil-20-and-coil-100 and
docs/datasets.md#office-31).

Views are built deterministically from explicit seeds (never the global RNG, unlike the
reference, defect D11) and nothing is written into the data folder.  Decoding needs Pillow
(``pip install viewsplit[images]``).  By default every file is decoded once into memory (and
cached as uint8 tensors); with ``data.stream=true`` (or when the decoded views would exceed
``data.stream_above_mb``) the views keep only file paths and each batch decodes its own rows in
the prefetch thread (:mod:`viewsplit.data.decoded`), giving the same batches.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .decoded import DecodedView, decode
from .image_ops import color_jitter
from .multiview import DataSplits, MultiViewDataset, reference_split, stratified_split
from .ondisk import OnDiskDataset, as_views
from .registry import DataConfig, Loader, cached, data_roots, file_fingerprint, missing_files_error, register

IMAGE_SIZE = 64
COIL_POSES = 72
OFFICE_DOMAINS = ("amazon", "dslr", "webcam")
_COIL_NAME = re.compile(r"^obj(\d+)__(\d+)\.png$", re.IGNORECASE)


def streams(cfg: DataConfig, n_samples: int, n_views: int, channels: int) -> bool:
    """``data.stream``; unset, whether the decoded views would hold more than ``data.stream_above_mb`` MiB."""
    if cfg.stream is not None:
        return cfg.stream
    return n_samples * n_views * channels * IMAGE_SIZE**2 > cfg.stream_above_mb * (1 << 20)


def _storage(stream: bool) -> str:
    return "image files decoded per batch, streamed" if stream else "decoded into memory"


def split_indices(n: int, labels: np.ndarray, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    if cfg.split == "reference":
        tr, te = reference_split(n, 0.2, 42)
        return tr, te, {"split": "reference (train_test_split(test_size=0.2, random_state=42))"}
    tr, te = stratified_split(labels, cfg.test_fraction, cfg.seed)
    return tr, te, {"split": "stratified", "split_seed": cfg.seed, "test_fraction": cfg.test_fraction}


# ---------------------------------------------------------------------------- COIL
def coil_files(folder: Path) -> dict[int, list[Path]]:
    """``obj{k}__{i}.png`` files grouped by object k, each list sorted by pose number."""
    objects: dict[int, list[tuple[int, Path]]] = {}
    for p in folder.iterdir():
        m = _COIL_NAME.match(p.name)
        if m:
            objects.setdefault(int(m.group(1)), []).append((int(m.group(2)), p))
    return {k: [p for _, p in sorted(v)] for k, v in sorted(objects.items())}


def coil_groups(n_objects: int, n_views: int, seed: int, grouping: str) -> np.ndarray:
    """Pose indices per (object, sample, view): shape ``(n_objects, 72 // V, V)``.

    ``random``: for objects in ascending order, ``perm = rng.permutation(72).reshape(V, 72 // V)``
    with one ``np.random.default_rng(seed)``; sample j takes ``perm[:, j]``.
    ``interleaved``: view v of sample j is pose ``v + j·V``.
    """
    if COIL_POSES % n_views:
        raise DataError(f"data.n_views: COIL has 72 poses per object; {n_views} views do not divide them")
    per = COIL_POSES // n_views
    if grouping == "interleaved":
        g = np.arange(COIL_POSES).reshape(per, n_views)
        return np.broadcast_to(g, (n_objects, per, n_views)).copy()
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(COIL_POSES).reshape(n_views, per).T for _ in range(n_objects)])


def _coil_loader(name: str, n_objects: int, channels: int, subdirs: list[str]) -> Loader:
    def folders(cfg: DataConfig) -> list[Path]:
        roots = data_roots(cfg, name)
        return [r / s for r in roots for s in ["", *subdirs]]

    def find(cfg: DataConfig) -> tuple[Path | None, dict[int, list[Path]]]:
        for f in folders(cfg):
            if f.is_dir():
                files = coil_files(f)
                if files:
                    return f, files
        return None, {}

    def locate(cfg: DataConfig) -> tuple[bool, str]:
        folder, _ = find(cfg)
        return (True, str(folder)) if folder else (False, "not found; looked in " + (
            ", ".join(map(str, folders(cfg))) or "(nothing: set data.root or $VIEWSPLIT_DATA)"))

    def load(cfg: DataConfig) -> DataSplits:
        folder, files = find(cfg)
        if folder is None:
            raise missing_files_error(name, folders(cfg), ["obj{k}__{i}.png"],
                                      f"{name} is not distributed with viewsplit; download it from Columbia CAVE "
                                      "(https://www.cs.columbia.edu/CAVE/software/softlib/) and pass data.root=FOLDER.")
        for k, paths in files.items():
            if len(paths) != COIL_POSES:
                raise DataError(f"{folder}: object {k} has {len(paths)} pose images, expected {COIL_POSES}")
        all_paths = [p for k in files for p in files[k]]
        groups = coil_groups(len(files), cfg.n_views, cfg.seed, cfg.grouping)
        obj = np.repeat(np.arange(len(files)), groups.shape[1])
        poses = groups.reshape(-1, cfg.n_views)
        labels = np.array([k - 1 for k in files], dtype=np.int64)[obj]
        names = [f"poses{v}" for v in range(cfg.n_views)]
        stream = streams(cfg, len(obj), cfg.n_views, channels)
        if stream:   # row j of view v is file obj_j · 72 + pose
            views = as_views([DecodedView(all_paths, obj * COIL_POSES + poses[:, v], channels, IMAGE_SIZE)
                               for v in range(cfg.n_views)])
            ds: MultiViewDataset = OnDiskDataset(views, torch.from_numpy(labels), names, name=name,
                                                 prefetch=cfg.prefetch)
        else:
            key = f"{name}-v1-{file_fingerprint(all_paths)}"
            imgs = cached(key, lambda: {"images": decode(all_paths, channels, IMAGE_SIZE)}, cfg.cache)["images"]
            imgs = imgs.reshape(len(files), COIL_POSES, *imgs.shape[1:])
            views = [imgs[torch.from_numpy(obj), torch.from_numpy(poses[:, v])] for v in range(cfg.n_views)]
            ds = MultiViewDataset(views, torch.from_numpy(labels), names, name=name)
        tr, te, info = split_indices(len(ds), labels, cfg)
        info.update(grouping=cfg.grouping, grouping_seed=cfg.seed, source=str(folder), storage=_storage(stream))
        return DataSplits(ds.subset(tr), ds.subset(te), cluster_on="test", info=info)

    shape = (f"data.n_views views (default 3) of {channels}×64×64 pose images; {n_objects * 24} samples "
             f"(3 views); {n_objects} classes")
    register(name, f"COIL-{n_objects} objects, views = disjoint seeded pose groups", shape, locate)(load)
    return load


load_coil20 = _coil_loader("coil20", 20, 1, ["coil-20-proc", "coil-20"])
load_coil100 = _coil_loader("coil100", 100, 3, ["coil-100"])


# ---------------------------------------------------------------------------- Office-31
_IMG_EXT = {".jpg", ".jpeg", ".png"}


def office_files(root: Path) -> dict[str, dict[str, list[Path]]]:
    """``{class: {domain: sorted files}}`` for ``<root>/<domain>[/images]/<class>/<file>``."""
    out: dict[str, dict[str, list[Path]]] = {}
    for d in OFFICE_DOMAINS:
        base = root / d / "images" if (root / d / "images").is_dir() else root / d
        if not base.is_dir():
            raise DataError(f"{root}: missing domain folder {d!r} (expected {root / d / 'images'})")
        for cls in sorted(p.name for p in base.iterdir() if p.is_dir()):
            files = sorted(p for p in (base / cls).iterdir() if p.suffix.lower() in _IMG_EXT)
            out.setdefault(cls, {})[d] = files
    for cls, doms in out.items():
        for d in OFFICE_DOMAINS:
            if not doms.get(d):
                raise DataError(f"{root}: class {cls!r} has no images in domain {d!r}")
    return dict(sorted(out.items()))


def office_triplets(files: dict[str, dict[str, list[Path]]]) -> list[tuple[int, list[tuple[Path, int]]]]:
    """Align domains per class: pad short domains with copies ``t`` of source ``t mod n``.

    Returns, per triplet, the class index and for each domain ``(file, t)`` where ``t = −1``
    marks an original and ``t ≥ 0`` the t-th padding copy (to be colour-jittered).
    """
    triplets = []
    for c, doms in enumerate(files.values()):
        m = max(len(doms[d]) for d in OFFICE_DOMAINS)
        padded = {}
        for d in OFFICE_DOMAINS:
            src = doms[d]
            padded[d] = [(p, -1) for p in src] + [(src[t % len(src)], t) for t in range(m - len(src))]
        for j in range(m):
            triplets.append((c, [padded[d][j] for d in OFFICE_DOMAINS]))
    return triplets


def jitter_copy(img: torch.Tensor, seed: int, cls: int, domain: int, t: int) -> torch.Tensor:
    """ColorJitter(0.5, 0.3, 0.3, 0.3) with factors from a generator seeded by (seed, class, domain, t)."""
    rng = np.random.default_rng([seed, cls, domain, t])
    b, c, s = rng.uniform(0.5, 1.5), rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3)
    h = rng.uniform(-0.3, 0.3)
    order = list(rng.permutation(4))
    x = color_jitter(img.float().unsqueeze(0) / 255.0, b, c, s, h, order)
    return (x[0] * 255.0).round().clamp(0, 255).to(torch.uint8)


def _jitter_rows(seed: int, classes: np.ndarray, domain: int,
                 copy: np.ndarray) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """Domain ``domain``'s per-row transform for a streamed view: padding copies (``copy[r]`` ≥ 0) are
    jittered as :func:`jitter_copy`, originals (−1) kept."""
    def transform(r: int, img: torch.Tensor) -> torch.Tensor:
        return img if copy[r] < 0 else jitter_copy(img, seed, int(classes[r]), domain, int(copy[r]))

    return transform


def _office_folders(cfg: DataConfig) -> list[Path]:
    return list(data_roots(cfg, "office31"))


def _office_root(cfg: DataConfig) -> Path | None:
    for r in _office_folders(cfg):
        if all((r / d).is_dir() for d in OFFICE_DOMAINS):
            return r
    return None


def _office_locate(cfg: DataConfig) -> tuple[bool, str]:
    r = _office_root(cfg)
    return (True, str(r)) if r else (False, "not found; looked in " + (
        ", ".join(map(str, _office_folders(cfg))) or "(nothing: set data.root or $VIEWSPLIT_DATA)"))


@register("office31", "Office-31, views = amazon / dslr / webcam images of one class (padded, seeded jitter)",
          "3 views of 3×64×64 images; 2817 samples; 31 classes", _office_locate)
def load_office31(cfg: DataConfig) -> DataSplits:
    """Triplet j of class c = (amazon[j], dslr[j], webcam[j]) over sorted, padded file lists.

    Deviation from the reference: padding copies are jittered on the fly after the 64×64
    resize (the reference jitters at 300×300 and saves files into the data folder).
    """
    root = _office_root(cfg)
    if root is None:
        raise missing_files_error("office31", _office_folders(cfg),
                                  [f"{d}/images/<class>/*.jpg" for d in OFFICE_DOMAINS],
                                  "Office-31 is not distributed with viewsplit; download the public archive and "
                                  "pass data.root=FOLDER (the folder holding amazon/, dslr/, webcam/).")
    files = office_files(root)
    trip = office_triplets(files)
    unique = sorted({p for _, views in trip for p, _ in views})
    pos = {p: i for i, p in enumerate(unique)}
    labels = np.array([c for c, _ in trip], dtype=np.int64)
    stream = streams(cfg, len(trip), len(OFFICE_DOMAINS), 3)
    if stream:
        views = as_views([DecodedView(unique, np.array([pos[triple[d][0]] for _, triple in trip]), 3, IMAGE_SIZE,
                                       _jitter_rows(cfg.seed, labels, d,
                                                    np.array([triple[d][1] for _, triple in trip])))
                           for d in range(len(OFFICE_DOMAINS))])
        ds: MultiViewDataset = OnDiskDataset(views, torch.from_numpy(labels), list(OFFICE_DOMAINS), name="office31",
                                             prefetch=cfg.prefetch)
    else:
        key = f"office31-v1-{file_fingerprint(unique)}"
        imgs = cached(key, lambda: {"images": decode(unique, 3, IMAGE_SIZE)}, cfg.cache)["images"]
        views = [torch.empty(len(trip), 3, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8) for _ in OFFICE_DOMAINS]
        for j, (c, triple) in enumerate(trip):
            for d, (p, t) in enumerate(triple):
                img = imgs[pos[p]]
                views[d][j] = img if t < 0 else jitter_copy(img, cfg.seed, c, d, t)
        ds = MultiViewDataset(views, torch.from_numpy(labels), list(OFFICE_DOMAINS), name="office31")
    tr, te, info = split_indices(len(ds), labels, cfg)
    info.update(jitter_seed=cfg.seed, source=str(root), storage=_storage(stream))
    return DataSplits(ds.subset(tr), ds.subset(te), cluster_on="test", info=info)

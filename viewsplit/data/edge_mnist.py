"""Edge-MNIST and Edge-Fashion-MNIST (MRDD's E-MNIST / E-FMNIST; docs/datasets.md#idx-files and
docs/datasets.md#edge-mnist-and-edge-fmnist).

View 0 is the 28×28 digit resized to 32×32; view 1 its edge map ``dilate3x3(img) − img``
computed on the 28×28 uint8 image *before* resizing.  Bilinear resize with half-pixel centres,
rounded to uint8 like the reference's PIL pipeline (within one grey level of it); values are
stored as uint8 and batched as float32 in [0, 1].  Official 60k/10k split, labels 0–9.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .image_ops import edge_map, resize
from .multiview import DataSplits, MultiViewDataset
from .registry import DataConfig, Locator, cached, data_roots, file_fingerprint, missing_files_error, register

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) of unsigned bytes; validate magic, dims and length."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot read IDX file ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{path}: IDX type byte 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path}: IDX length {len(data)} bytes, header promises {expected} (dims {dims})")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def find_idx_files(folders: list[Path]) -> dict[str, Path] | None:
    """The first folder holding all four IDX files (each ``.gz`` or raw)."""
    for folder in folders:
        found = {}
        for key, stem in FILES.items():
            for cand in (folder / f"{stem}.gz", folder / stem):
                if cand.exists():
                    found[key] = cand
                    break
        if len(found) == len(FILES):
            return found
    return None


def edge_views(images: np.ndarray | torch.Tensor, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 28, 28)`` uint8 → (image, edge) uint8 tensors of shape ``(N, 1, size, size)``."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1)
    edge = edge_map(x)
    return resize(x, size), resize(edge, size)


def _folders(cfg: DataConfig, kind: str) -> list[Path]:
    extra = [DEBIAN_FMNIST] if kind == "fashion-mnist" else []
    return data_roots(cfg, kind, extra)


def _load(cfg: DataConfig, kind: str, how: str) -> DataSplits:
    folders = _folders(cfg, kind)
    files = find_idx_files(folders)
    if files is None:
        raise missing_files_error(f"edge_{kind.replace('fashion-mnist', 'fmnist')}", folders,
                                  [f"{s}[.gz]" for s in FILES.values()], how)

    def build() -> dict:
        out = {}
        for split in ("train", "test"):
            imgs = read_idx(files[f"{split}_images"])
            labels = read_idx(files[f"{split}_labels"])
            if imgs.ndim != 3 or labels.ndim != 1 or len(imgs) != len(labels):
                raise DataError(f"{files[f'{split}_images']}: expected (N, 28, 28) images matching "
                                f"{len(labels)} labels, got {imgs.shape}")
            img, edge = edge_views(imgs)
            out[split] = {"image": img, "edge": edge, "labels": torch.from_numpy(labels.astype(np.int64))}
        return out

    key = f"edge-{kind}-v1-{file_fingerprint(list(files.values()))}"
    data = cached(key, build, cfg.cache)
    name = f"edge_{'fmnist' if kind == 'fashion-mnist' else 'mnist'}"

    def make(split: str) -> MultiViewDataset:
        d = data[split]
        return MultiViewDataset([d["image"], d["edge"]], d["labels"], ["image", "edge"], name=name)

    info = {"split": "official", "source": str(files["train_images"].parent)}
    return DataSplits(make("train"), make("test"), cluster_on="test", info=info)


def _locate(kind: str) -> Locator:
    def locate(cfg: DataConfig) -> tuple[bool, str]:
        folders = _folders(cfg, kind)
        files = find_idx_files(folders)
        if files:
            return True, str(files["train_images"].parent)
        looked = ", ".join(map(str, folders)) or "(nothing: set data.root or $VIEWSPLIT_DATA)"
        return False, "not found; looked in " + looked

    return locate


FMNIST_HOW = ("Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files land in "
              f"{DEBIAN_FMNIST}), or put the four IDX files in a folder and pass data.root=FOLDER "
              "or set $VIEWSPLIT_DATA.")
MNIST_HOW = ("Put the four original MNIST IDX files (http://yann.lecun.com/exdb/mnist/) in a folder and "
             "pass data.root=FOLDER, or place them in $VIEWSPLIT_DATA/mnist.")
SHAPE = "2 views: image 1×32×32, edge 1×32×32; 60000 train + 10000 test; 10 classes"


@register("edge_fmnist", "Fashion-MNIST image + edge map (MRDD's E-FMNIST)", SHAPE, _locate("fashion-mnist"))
def load_edge_fmnist(cfg: DataConfig) -> DataSplits:
    return _load(cfg, "fashion-mnist", FMNIST_HOW)


@register("edge_mnist", "MNIST image + edge map (MRDD's E-MNIST)", SHAPE, _locate("mnist"))
def load_edge_mnist(cfg: DataConfig) -> DataSplits:
    return _load(cfg, "mnist", MNIST_HOW)

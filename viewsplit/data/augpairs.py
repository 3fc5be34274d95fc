"""Augmentation pairs: two independent augmentations of one image, MIB's setting
(docs/datasets.md#mib-augmentation-pairs).

``data.name=augpairs data.source=edge_fmnist data.source_view=0`` takes view 0 of the source
data set; both views of a sample are that image, and **training passes** draw an independent
augmentation per view::

    RandomAffine(degrees 15, translate 0.1, scale 0.9–1.1, x-shear 15; nearest, zero fill)
    → PixelCorruption (each pixel zeroed with probability 0.2, one mask for all channels)

(strengths overridable with ``data.augment.<key>``, keys of :class:`AugmentConfig`).  The random
numbers are a vectorised integer hash (splitmix64) of (seed, epoch, index, view, k), so a
sample's augmentation is redrawn every epoch, reproducible, and independent of the batch it
lands in, of the batch size and of the DDP rank; ``seed`` is the ``seed`` passed to
:meth:`AugmentedPairs.batches` (the engine passes ``train.seed``, which also orders the epoch).

Training passes are the shuffled ones (the engine's); ordered passes — feature extraction,
evaluation — see the original image in both views (MIB evaluates un-augmented images).  The test
split is a plain data set whose two views are the original image.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..typed import from_dict
from .multiview import Batch, DataSplits, MultiViewDataset
from .registry import DATASETS, DataConfig, register

if TYPE_CHECKING:   # .augment imports viewsplit.config, which imports this package: import it lazily
    from .augment import AugmentConfig

_MASK = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_N_AFFINE = 5   # angle, dx, dy, scale, shear; pixel corruption uses k = 5, 6, …


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64 (Steele et al. 2014) on uint64 arrays, wrapping arithmetic."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash_uniform(seed: int, epoch: int, index: Tensor, view: int, k_start: int, k_count: int) -> Tensor:
    """U[0, 1) numbers ``(B, k_count)``: entry (b, j) is a hash of (seed, epoch, index[b], view, k_start + j)."""
    with np.errstate(over="ignore"):
        h = np.full(index.shape[0], int(seed) & _MASK, dtype=np.uint64)
        h = _splitmix(h ^ np.uint64(int(epoch) & _MASK))
        h = _splitmix(h ^ np.uint64(int(view) & _MASK))
        h = _splitmix(h ^ index.cpu().numpy().astype(np.uint64))
        k = np.arange(k_start, k_start + k_count, dtype=np.uint64)
        h = _splitmix(h[:, None] ^ k[None, :])
    return torch.from_numpy((h >> np.uint64(11)).astype(np.float64) * 2.0**-53)


def mib_augment() -> AugmentConfig:
    """MIB's augmentation strengths (the :class:`AugmentConfig` defaults)."""
    from .augment import AugmentConfig

    return AugmentConfig()


def is_identity_affine(cfg: AugmentConfig) -> bool:
    return cfg.degrees == 0 and cfg.translate == 0 and cfg.shear == 0 and cfg.scale_min == cfg.scale_max == 1


def augment_images(x: Tensor, index: Tensor, seed: int, epoch: int, view: int, cfg: AugmentConfig) -> Tensor:
    """MIB's augmentation of images ``(B, C, H, W)`` (float, [0, 1]) keyed per (seed, epoch, index, view).

    Parameters follow :func:`viewsplit.data.augment.random_affine` (torchvision ``RandomAffine``):
    angle ~ U(±degrees), (dx, dy) ~ U(±translate·(W, H)) rounded to pixels, scale ~
    U(scale_min, scale_max), x-shear ~ U(±shear); then each pixel is kept iff u ≥ corruption.
    """
    from .augment import affine_matrices, warp

    b, _, h, w = x.shape
    if not is_identity_affine(cfg):
        u = hash_uniform(seed, epoch, index, view, 0, _N_AFFINE).float()
        angle = (2 * u[:, 0] - 1) * cfg.degrees
        shift = torch.stack([torch.round((2 * u[:, 1] - 1) * cfg.translate * w),
                             torch.round((2 * u[:, 2] - 1) * cfg.translate * h)], 1)
        scale = cfg.scale_min + (cfg.scale_max - cfg.scale_min) * u[:, 3]
        shear = (2 * u[:, 4] - 1) * cfg.shear
        x = warp(x, affine_matrices(angle, shift, scale, shear))
    if cfg.corruption > 0:
        keep = hash_uniform(seed, epoch, index, view, _N_AFFINE, h * w) >= cfg.corruption
        x = x * keep.view(b, 1, h, w).to(x.device, x.dtype)
    return x


@dataclass
class AugmentedPairs(MultiViewDataset):
    """A data set of two views of the same images, augmented independently in training passes."""

    augment: AugmentConfig = field(default_factory=mib_augment)

    def subset(self, index: Tensor | np.ndarray | Sequence[int]) -> AugmentedPairs:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        x = self.views[0][idx]
        assert self.mask is not None   # validate() sets it
        return AugmentedPairs([x, x], None if self.labels is None else self.labels[idx], list(self.view_names or []),
                              self.mask[idx], self.name, augment=self.augment)

    def with_mask(self, mask: Tensor) -> AugmentedPairs:
        return AugmentedPairs(self.views, self.labels, list(self.view_names or []), mask, self.name,
                              augment=self.augment)

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                drop_last: bool = False, rank: int = 0, world_size: int = 1, start: int = 0,
                augment: bool | None = None) -> Iterator[Batch]:
        """:meth:`MultiViewDataset.batches`, augmented when ``augment`` (default: when ``shuffle``,
        i.e. in training passes); ordered passes return the original images."""
        plain = super().batches(batch_size, shuffle=shuffle, seed=seed, epoch=epoch, drop_last=drop_last, rank=rank,
                                world_size=world_size, start=start)
        if not (shuffle if augment is None else augment):
            yield from plain
            return
        for batch in plain:
            batch.views = [augment_images(x, batch.index, seed, epoch, v, self.augment)
                           for v, x in enumerate(batch.views)]
            yield batch


def augment_config(cfg: DataConfig) -> AugmentConfig:
    """MIB's strengths with ``data.augment`` overrides (validated; only the image keys apply)."""
    from .augment import AugmentConfig

    allowed = {"degrees", "translate", "scale_min", "scale_max", "shear", "corruption"}
    unknown = set(cfg.augment) - allowed
    if unknown:
        raise ConfigError(f"data.augment: unknown key(s) {sorted(unknown)}; valid keys: {sorted(allowed)}")
    aug = from_dict(AugmentConfig, dict(cfg.augment), "data.augment")
    aug.validate("data.augment")
    return aug


def _source_config(cfg: DataConfig) -> DataConfig:
    if not cfg.source:
        raise ConfigError("data.source: augpairs needs the image data set to augment, e.g. data.source=edge_fmnist")
    if cfg.source == "augpairs" or cfg.source not in DATASETS:
        choices = sorted(n for n in DATASETS if n != "augpairs")
        raise ConfigError(f"data.source: {cfg.source!r} is not a data set augpairs can use; choose one of {choices}")
    return dataclasses.replace(cfg, name=cfg.source, train_limit=None, test_limit=None, missing_rate=0.0)


def _locate(cfg: DataConfig) -> tuple[bool, str]:
    if not cfg.source or cfg.source not in DATASETS or cfg.source == "augpairs":
        return False, "set data.source to an image data set, e.g. data.source=edge_fmnist"
    return DATASETS[cfg.source].locate(_source_config(cfg))


@register("augpairs", "two independent augmentations of one image view of data.source (MIB's setting)",
          "2 views of data.source's view data.source_view; its samples and classes", _locate)
def load_augpairs(cfg: DataConfig) -> DataSplits:
    aug = augment_config(cfg)
    src_cfg = _source_config(cfg)
    src = DATASETS[src_cfg.name].load(src_cfg)
    n_views = len(src.train.views)
    if cfg.source_view >= n_views:
        raise ConfigError(f"data.source_view: {cfg.source_view} is not a view of {cfg.source!r} ({n_views} views)")
    x_train, x_test = src.train.views[cfg.source_view], src.test.views[cfg.source_view]
    if x_train.dim() != 4:
        raise DataError(f"augpairs: view {cfg.source_view} of {cfg.source!r} has shape {tuple(x_train.shape[1:])}; "
                        "augmentation pairs need an image view (C, H, W)")
    base = (src.train.view_names or [])[cfg.source_view]
    names = [f"{base}_a", f"{base}_b"]
    name = f"augpairs({cfg.source})"
    train = AugmentedPairs([x_train, x_train], src.train.labels, names, name=name, augment=aug)
    test = MultiViewDataset([x_test, x_test], src.test.labels, list(names), name=name)
    info = dict(src.info, augpairs={
        "source": cfg.source, "source_view": cfg.source_view,
        "augment": {k: v for k, v in dataclasses.asdict(aug).items() if k not in ("noise_std", "feature_drop")},
        "augmented": "train split, shuffled (training) passes only; redrawn per epoch, keyed on "
                     "(train.seed, epoch, index, view); test split and feature extraction un-augmented"})
    return DataSplits(train, test, src.cluster_on, info)

"""The in-memory multi-view data set, its batches, validation and availability masks.

A data set is a list of V per-view tensors sharing their first dimension N (each view a
vector ``(N, D_v)`` or an image ``(N, C, H, W)``), optional integer labels, view names and a
boolean availability mask ``(N, V)``.  Batching indexes the tensors directly: there is no
per-sample Python work and no PIL in the hot loop.

Image views may be stored as ``uint8`` (values 0..255) to save memory; batches convert them
to float32 in [0, 1] (the same rounding the reference data pipelines apply).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError


@dataclass
class Batch:
    """One mini-batch: ``views[v]`` is ``(B, ...)`` float32, ``mask`` is ``(B, V)`` bool.

    ``labels`` is ``(B,)`` int64 (−1 where unknown) or None; ``index`` holds the samples'
    positions in the data set whose ``uid`` is ``source``. ``cache`` lets a method share work
    between the optimiser steps of one training step (e.g. a frozen model's output).
    """

    views: list[Tensor]
    mask: Tensor
    labels: Tensor | None
    index: Tensor
    source: int | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str, channels_last: bool = False) -> Batch:
        nb = device != "cpu" and torch.device(device).type == "cuda"
        fmt = torch.channels_last if channels_last else torch.preserve_format
        return Batch(
            views=[x.to(device, non_blocking=nb, memory_format=fmt if x.dim() == 4 else torch.preserve_format)
                   for x in self.views],
            mask=self.mask.to(device, non_blocking=nb),
            labels=None if self.labels is None else self.labels.to(device, non_blocking=nb),
            index=self.index.to(device, non_blocking=nb),
            source=self.source,
        )

    def __len__(self) -> int:
        return int(self.index.shape[0])


class LazyView(Protocol):
    """A view that is not held in memory (memory-mapped, or standardised as its rows are read), indexed
    like a tensor: ``view[index]`` reads those rows.  :class:`~viewsplit.data.ondisk.OnDiskDataset`
    holds such views where an in-memory data set holds tensors."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def dim(self) -> int: ...

    def take(self, index: np.ndarray) -> LazyView: ...

    def __getitem__(self, index: Tensor | np.ndarray) -> Tensor: ...

    def read_all(self) -> Tensor: ...


_UIDS = itertools.count()

#: the largest magnitude a view may hold: squares and sums of larger values overflow float32 in losses and
#: standardisation, so training would "succeed" on garbage
MAX_ABS = 1e15


def _as_float(x: Tensor) -> Tensor:
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


@dataclass
class MultiViewDataset:
    """V aligned views of N samples held as tensors in memory.

    ``factors`` (optional) holds the generating factors where they are known (docs/evaluation.md#factor-recovery):
    ``"shared"`` (seen by every view) and ``"view<v>"`` (private to view v), each a float32
    ``(N, k)`` tensor; the class is ``labels``.
    """

    views: list[Tensor]
    labels: Tensor | None = None
    view_names: list[str] | None = None
    mask: Tensor | None = None
    name: str = "dataset"
    factors: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        self.uid = next(_UIDS)
        if self.view_names is None and isinstance(self.views, (list, tuple)):
            self.view_names = [f"view{v}" for v in range(len(self.views))]
        validate(self)

    # ------------------------------------------------------------------ basic facts
    def __len__(self) -> int:
        return int(self.views[0].shape[0])

    @property
    def n_views(self) -> int:
        return len(self.views)

    @property
    def view_shapes(self) -> list[tuple[int, ...]]:
        return [tuple(x.shape[1:]) for x in self.views]

    @property
    def n_classes(self) -> int:
        if self.labels is None:
            return 0
        known = self.labels[self.labels >= 0]
        return int(known.max().item()) + 1 if known.numel() else 0

    # ------------------------------------------------------------------ indexing
    def subset(self, index: Tensor | np.ndarray | Sequence[int]) -> MultiViewDataset:
        """A new data set holding the given samples (views are indexed, not copied lazily)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        assert self.mask is not None   # validate() sets it
        return MultiViewDataset(
            views=[x[idx] for x in self.views],
            labels=None if self.labels is None else self.labels[idx],
            view_names=list(self.view_names or []),
            mask=self.mask[idx],
            name=self.name,
            factors=None if self.factors is None else {k: f[idx] for k, f in self.factors.items()},
        )

    def with_mask(self, mask: Tensor) -> MultiViewDataset:
        """The same data with another availability mask (validated)."""
        return MultiViewDataset(self.views, self.labels, list(self.view_names or []), mask, self.name, self.factors)

    def batch(self, index: Tensor) -> Batch:
        """Gather one batch; uint8 image views become float32 in [0, 1]."""
        assert self.mask is not None   # validate() sets it
        return Batch(
            views=[_as_float(x[index]) for x in self.views],
            mask=self.mask[index],
            labels=None if self.labels is None else self.labels[index],
            index=index,
            source=self.uid,
        )

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> Iterator[Batch]:
        """Yield batches of this rank's shard of one epoch.

        The epoch order is a permutation drawn from a local generator seeded by
        ``(seed, epoch)``, so it is identical across processes and resumes; rank ``r`` of
        ``world_size`` takes every ``world_size``-th sample (padded by wrapping so that every
        rank has the same number of batches, as ``DistributedSampler`` does).
        ``batch_size`` is the per-rank batch size. ``start`` skips that many batches
        (used to resume mid-epoch).
        """
        order = epoch_order(len(self), shuffle=shuffle, seed=seed, epoch=epoch)
        if world_size > 1:
            per_rank = -(-len(order) // world_size)
            pad = per_rank * world_size - len(order)
            if pad:
                order = torch.cat([order, order[:pad]])
            order = order[rank::world_size]
        n_batches = num_batches(len(order), batch_size, drop_last)
        for b in range(start, n_batches):
            yield self.batch(order[b * batch_size : (b + 1) * batch_size])

    def stack_views_float(self) -> list[Tensor]:
        return [_as_float(x) for x in self.views]


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int) -> Tensor:
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g)


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else -(-n // batch_size)


# ---------------------------------------------------------------------------- validation
def validate(ds: MultiViewDataset) -> None:
    """Check a data set and raise :class:`DataError` naming the view or key at fault.

    A missing ``mask`` becomes "every view present" once the views are known to be valid.
    """
    where = f"data set {ds.name!r}"
    if not isinstance(ds.views, (list, tuple)):
        raise DataError(f"{where}: views must be a list of tensors, got {type(ds.views).__name__}")
    if len(ds.views) < 2:
        raise DataError(f"{where}: a multi-view data set needs at least 2 views, got {len(ds.views)}")
    names = ds.view_names
    if not isinstance(names, (list, tuple)) or not all(isinstance(s, str) for s in names):
        raise DataError(f"{where}: view_names must be a list of strings, got {names!r}")
    if len(names) != len(ds.views):
        raise DataError(f"{where}: {len(names)} view names for {len(ds.views)} views")
    twice = sorted({s for s in names if names.count(s) > 1})
    if twice:
        raise DataError(f"{where}: view names must be distinct, {twice} name more than one view")
    n = 0
    for v, x in enumerate(ds.views):
        tag = f"{where}, view {v} ({names[v]!r})"
        if not isinstance(x, Tensor):
            raise DataError(f"{tag}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in (torch.float32, torch.uint8):
            raise DataError(f"{tag}: dtype must be float32 (or uint8 images), got {x.dtype}")
        if x.dim() not in (2, 4):
            raise DataError(
                f"{tag}: expected shape (N, D) for a vector view or (N, C, H, W) for an image view, "
                f"got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise DataError(f"{tag}: empty view, no samples (shape {tuple(x.shape)}); if a split or limit emptied it, "
                            "check data.test_fraction, data.train_limit / data.test_limit and the data's size")
        if any(s == 0 for s in x.shape[1:]):
            raise DataError(f"{tag}: empty view, no features (shape {tuple(x.shape)})")
        if v == 0:
            n = x.shape[0]
        elif x.shape[0] != n:
            raise DataError(f"{tag}: has {x.shape[0]} samples but view 0 ({names[0]!r}) has {n}")
    if ds.labels is not None:
        y = ds.labels
        if not isinstance(y, Tensor) or y.dtype != torch.int64 or y.dim() != 1:
            got = f"{y.dtype}, shape {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
            raise DataError(f"{where}: labels must be a 1-d int64 tensor, got {got}")
        if y.shape[0] != n:
            raise DataError(f"{where}: {y.shape[0]} labels for {n} samples")
        if (y < -1).any():
            raise DataError(f"{where}: labels must be >= 0 (or -1 for unknown)")
    if ds.mask is None:
        ds.mask = torch.ones(n, len(ds.views), dtype=torch.bool)
    m = ds.mask
    if not isinstance(m, Tensor) or m.dtype != torch.bool or tuple(m.shape) != (n, len(ds.views)):
        got = f"{m.dtype} {tuple(m.shape)}" if isinstance(m, Tensor) else type(m).__name__
        raise DataError(f"{where}: mask must be a bool tensor of shape ({n}, {len(ds.views)}), got {got}")
    empty = (~m.any(1)).nonzero()[:5, 0].tolist()
    if empty:
        raise DataError(f"{where}: mask rows with no view present (every sample needs >= 1 view): {empty}")
    for key, f in (ds.factors or {}).items():
        if key != "shared" and not (key.startswith("view") and key[4:].isdigit() and int(key[4:]) < len(ds.views)):
            raise DataError(f"{where}: factor {key!r} must be 'shared' or 'view<v>' with v < {len(ds.views)}")
        if not isinstance(f, Tensor) or f.dtype != torch.float32 or f.dim() != 2 or f.shape[0] != n:
            got = f"{f.dtype} {tuple(f.shape)}" if isinstance(f, Tensor) else type(f).__name__
            raise DataError(f"{where}: factor {key!r} must be a float32 tensor of shape ({n}, k), got {got}")
        if not torch.isfinite(f).all():
            raise DataError(f"{where}: factor {key!r} contains NaN or Inf values")
    for v, x in enumerate(ds.views):
        check_values(x, f"{where}, view {v} ({names[v]!r})", m[:, v])


def check_values(x: Tensor, tag: str, present: Tensor | None = None) -> None:
    """Raise a :class:`DataError` naming ``tag`` if the ``present`` samples of ``x`` hold NaN, Inf or
    magnitudes above :data:`MAX_ABS` (absent samples never reach a network and may hold anything)."""
    if x.dtype == torch.uint8:
        return
    lo, hi = torch.aminmax(x.reshape(x.shape[0], -1), dim=1)   # per sample, without a copy of the view
    if present is not None:
        lo, hi = lo.where(present, 0.0), hi.where(present, 0.0)
    bad = ~(torch.isfinite(lo) & torch.isfinite(hi))
    if bool(bad.any()):
        raise DataError(f"{tag}: contains NaN or Inf values (first bad samples: {bad.nonzero()[:5, 0].tolist()})")
    size = torch.maximum(lo.abs(), hi.abs())
    if bool((size > MAX_ABS).any()):
        raise DataError(f"{tag}: holds values up to {float(size.max()):.3g} (first samples: "
                        f"{(size > MAX_ABS).nonzero()[:5, 0].tolist()}); values beyond ±{MAX_ABS:.0e} overflow "
                        "float32 in training, so rescale or standardise this view first")


def check_batch_mask(mask: Tensor) -> None:
    """Raise if a batch mask has a row without any view (docs/evaluation.md#missing-views)."""
    if mask.dtype != torch.bool or mask.dim() != 2:
        raise DataError(f"mask must be a (B, V) bool tensor, got {mask.dtype} {tuple(mask.shape)}")
    if not bool(mask.any(1).all()):
        raise DataError("mask has a row with no view present; every sample needs at least one view")


# ---------------------------------------------------------------------------- masks, splits
def incomplete_mask(n: int, n_views: int, missing_rate: float, seed: int) -> Tensor:
    """COMPLETER-style availability mask (docs/evaluation.md#missing-views).

    ``round(missing_rate * n)`` samples (half rounded up) become incomplete; each keeps a
    uniformly drawn non-empty proper subset of the views (bitmask order 1 … 2^V − 2).
    """
    if n_views < 2:
        raise DataError(f"missing views need at least 2 views, got {n_views}")
    if not 0.0 <= missing_rate <= 1.0:
        raise DataError(f"missing_rate must lie in [0, 1], got {missing_rate}")
    rng = np.random.default_rng(seed)
    mask = np.ones((n, n_views), dtype=bool)
    n_inc = int(np.floor(missing_rate * n + 0.5))
    if n_inc == 0:
        return torch.from_numpy(mask)
    idx = np.sort(rng.choice(n, size=n_inc, replace=False))
    keep = rng.integers(0, 2**n_views - 2, size=n_inc) + 1
    bits = (keep[:, None] >> np.arange(n_views)[None, :]) & 1
    mask[idx] = bits.astype(bool)
    return torch.from_numpy(mask)


def subset_mask(n: int, n_views: int, views: Sequence[int]) -> Tensor:
    """The (n, V) mask in which every sample has exactly the views in ``views`` (per-combination protocol)."""
    mask = torch.zeros(n, n_views, dtype=torch.bool)
    mask[:, list(views)] = True
    return mask


def make_incomplete(dataset: MultiViewDataset, missing_rate: float, seed: int = 0) -> MultiViewDataset:
    """A copy of ``dataset`` in which ``missing_rate`` of the samples miss some views."""
    mask = incomplete_mask(len(dataset), dataset.n_views, missing_rate, seed)
    return dataset.with_mask(mask & dataset.mask if dataset.mask is not None else mask)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: from each class, ``round(test_fraction * n_c)`` samples go to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(np.floor(test_fraction * len(idx) + 0.5))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def reference_split(n: int, test_fraction: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.train_test_split(range(n), test_size=0.2, random_state=42)`` without sklearn.

    Returns ``(train, test)`` in the order scikit-learn returns them (docs/datasets.md#coil-20-and-coil-100).
    """
    perm = np.random.RandomState(seed).permutation(n)
    n_test = int(np.ceil(test_fraction * n))
    return perm[n_test:], perm[:n_test]


@dataclass
class DataSplits:
    """What a loader returns: the train split, the test split and how to evaluate them.

    ``cluster_on`` is ``"test"`` for data sets with an official split and ``"all"`` for those
    clustered on every sample (Handwritten, by convention).  ``info`` records the split and
    grouping definitions for the results file.
    """

    train: MultiViewDataset
    test: MultiViewDataset
    cluster_on: str = "test"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def all(self) -> MultiViewDataset:
        return concat(self.train, self.test)


def concat(a: MultiViewDataset, b: MultiViewDataset) -> MultiViewDataset:
    assert a.mask is not None and b.mask is not None   # validate() sets them
    return MultiViewDataset(
        views=[torch.cat([x, y]) for x, y in zip(a.views, b.views)],
        labels=None if a.labels is None or b.labels is None else torch.cat([a.labels, b.labels]),
        view_names=list(a.view_names or []),
        mask=torch.cat([a.mask, b.mask]),
        name=a.name,
        factors=None if a.factors is None or b.factors is None
        else {k: torch.cat([f, b.factors[k]]) for k, f in a.factors.items()},
    )

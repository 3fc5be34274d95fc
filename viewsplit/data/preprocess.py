"""Per-view standardisation that belongs to the model: fitted on the training data, stored in the
model's ``state_dict`` (so in every checkpoint and model file) and applied to any new data.

``data.standardize``: ``vectors`` (the default: z-score every feature of each vector view, leave
image views alone), ``all`` (image views too, per channel, as torchvision's ``Normalize``) or
``none``.  Statistics use only the samples where the view is present, the population standard
deviation, and a constant feature keeps scale 1 (as scikit-learn's ``StandardScaler``).  They are
accumulated batch by batch in float64, two passes (mean, then squared deviations), so a data set
never has to be converted as a whole.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .multiview import LazyView, MultiViewDataset, _as_float

STANDARDIZE = ("vectors", "all", "none")


def standardise(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """(x − mean) / std in float64, returned as float32 (uint8 images are scaled to [0, 1] first)."""
    return ((_as_float(x).double() - mean.to(x.device)) / std.to(x.device)).float()


class StandardizedView:
    """A view that is not held in memory (e.g. a memory-mapped one), standardised as its rows are read:
    indexing, ``take`` and ``read_all`` behave as the wrapped view's."""

    def __init__(self, base: LazyView, mean: Tensor, std: Tensor):
        self.base, self.mean, self.std = base, mean, std

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.base.shape)

    def dim(self) -> int:
        return self.base.dim()

    def take(self, index: np.ndarray) -> StandardizedView:
        return StandardizedView(self.base.take(index), self.mean, self.std)

    def __getitem__(self, index: Tensor | np.ndarray) -> Tensor:
        return standardise(self.base[index], self.mean, self.std)

    def read_all(self) -> Tensor:
        return standardise(self.base.read_all(), self.mean, self.std)


class Standardizer(nn.Module):
    """``x_v → (x_v − mean_v) / std_v`` for the views it was fitted to standardise; identity for the others."""

    active: Tensor

    def __init__(self, view_shapes: Sequence[Sequence[int]]):
        super().__init__()
        self.register_buffer("active", torch.zeros(len(view_shapes), dtype=torch.bool))
        for v, shape in enumerate(view_shapes):
            stat = tuple(shape) if len(shape) == 1 else (shape[0], *[1] * (len(shape) - 1))
            self.register_buffer(f"mean_{v}", torch.zeros(stat))
            self.register_buffer(f"std_{v}", torch.ones(stat))

    def stats(self, v: int) -> tuple[Tensor, Tensor]:
        return getattr(self, f"mean_{v}"), getattr(self, f"std_{v}")

    @torch.no_grad()
    def fit(self, ds: MultiViewDataset, which: str = "vectors", batch_size: int = 4096) -> Standardizer:
        """Fit the statistics of the views selected by ``which`` (see the module docstring) on ``ds``."""
        if which not in STANDARDIZE:
            raise ConfigError(f"data.standardize: {which!r} is not one of {list(STANDARDIZE)}")
        self.active.zero_()
        chosen = [v for v, s in enumerate(ds.view_shapes)
                  if which == "all" or (which == "vectors" and len(s) == 1)]
        assert ds.mask is not None   # validate() sets it
        chosen = [v for v in chosen if bool(ds.mask[:, v].any())]
        if not chosen:
            return self
        sums = {v: torch.zeros(self.stats(v)[0].shape, dtype=torch.float64) for v in chosen}
        counts = dict.fromkeys(chosen, 0)
        for v, x in self._present(ds, chosen, batch_size):
            sums[v] += _reduce(x)
            counts[v] += x.shape[0] * math.prod(x.shape[2:])
        means = {v: sums[v] / max(counts[v], 1) for v in chosen}
        sq = {v: torch.zeros_like(means[v]) for v in chosen}
        for v, x in self._present(ds, chosen, batch_size):
            sq[v] += _reduce((x - means[v]) ** 2)
        for v in chosen:
            std = (sq[v] / max(counts[v], 1)).sqrt()
            std = torch.where(std <= 1e-10 * means[v].abs(), torch.ones_like(std), std)
            mean_buf, std_buf = self.stats(v)
            mean_buf.copy_(means[v])
            std_buf.copy_(std)
            self.active[v] = True
        return self

    @staticmethod
    def _present(ds: MultiViewDataset, views: list[int], batch_size: int) -> Iterator[tuple[int, Tensor]]:
        for batch in ds.batches(batch_size):
            for v in views:
                yield v, batch.views[v][batch.mask[:, v]].double()

    def apply_views(self, views: Sequence) -> list:
        """The standardised views (float32 tensors; a view that is not in memory, e.g. memory-mapped, is
        wrapped so that its rows are standardised as they are read); others are returned unchanged."""
        out = []
        for v, x in enumerate(views):
            if bool(self.active[v]):
                mean, std = self.stats(v)
                x = standardise(x, mean, std) if isinstance(x, Tensor) else StandardizedView(x, mean, std)
            out.append(x)
        return out

    def transform(self, ds: MultiViewDataset) -> MultiViewDataset:
        """A copy of ``ds`` (of its own class) with standardised views; everything else kept."""
        if not bool(self.active.any()):
            return ds
        return dataclasses.replace(ds, views=self.apply_views(ds.views))

    def invert(self, v: int, x: Tensor) -> Tensor:
        """Map view ``v`` from the standardised space back to the data's units (e.g. predicted views)."""
        if not bool(self.active[v]):
            return x
        mean, std = self.stats(v)
        return (x.double() * std.to(x.device) + mean.to(x.device)).float()

    def describe(self) -> str:
        views = self.active.nonzero()[:, 0].tolist()
        return f"per view, fitted on train: views {views}" if views else "none"


def _reduce(x: Tensor) -> Tensor:
    """Sum over samples (vector views) or over samples and positions (image views, per channel)."""
    return x.sum(0) if x.dim() == 2 else x.sum(dim=[0, *range(2, x.dim())]).view(-1, *[1] * (x.dim() - 2))

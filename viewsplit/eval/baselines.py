"""Raw-view baselines: the evaluation protocol run on the input views themselves, so a report shows
what learning added (``eval.raw_baselines``).

Rows ``raw_<v>`` (view v) and ``raw_all`` (every view concatenated) are the views as the model sees
them, i.e. after its standardisation (vector views z-scored on the train split), flattened; an
absent view counts as zeros (its training mean when standardised).  They go through the same
k-means protocol and probes as the learned representations (:func:`~viewsplit.eval.evaluate.evaluate`).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..config import EvalConfig
from ..data.multiview import DataSplits
from .evaluate import evaluate


class RawViews(nn.Module):
    """A stand-in for a method whose representations are the (flattened) input views."""

    name: ClassVar[str] = "raw views"

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        if mask is None:
            mask = torch.ones(views[0].shape[0], len(views), dtype=torch.bool, device=views[0].device)
        raw = {f"raw_{v}": x.flatten(1) * mask[:, v : v + 1].to(x.dtype) for v, x in enumerate(views)}
        return {**raw, "raw_all": torch.cat(list(raw.values()), 1)}

    def posteriors(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, tuple[Tensor, Tensor]]:
        """None: the raw views are no Gaussian posteriors."""
        return {}


def add_raw_baselines(metrics: dict, splits: DataSplits, cfg: EvalConfig, device: torch.device | str = "cpu") -> dict:
    """Evaluate :class:`RawViews` on ``splits`` and append its rows to ``metrics``' clustering, probe
    and secondary-split tables (in place; also returned)."""
    raw = evaluate(RawViews(), splits, dataclasses.replace(cfg, representations=[], mine=False), device)
    for key in ("clustering", "classification"):
        metrics.setdefault(key, {}).update(raw[key])
    for split, rows in (raw.get("secondary") or {}).items():
        metrics["secondary"][split]["clustering"].update(rows["clustering"])
    return metrics

"""Raw-view baselines: the evaluation protocol run on the input views themselves, so a report shows
what learning added (``eval.raw_baselines``).

Rows ``raw_<v>`` (view v) and ``raw_all`` (every view concatenated) are the views as the model sees
them, i.e. after its standardisation (vector views z-scored on the train split), flattened; an
absent view counts as zeros (its training mean when standardised).  They go through the same
k-means protocol and probes as the learned representations (:func:`~viewsplit.eval.evaluate.evaluate`),
on the primary clustering split, and are cached by content (:func:`add_raw_baselines`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..config import EvalConfig
from ..data.multiview import DataSplits
from ..data.registry import cache_path, cached
from .evaluate import cap_splits, evaluate


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
    """Evaluate :class:`RawViews` on ``splits`` and append its rows to ``metrics``' clustering and probe
    tables (in place; also returned).

    Only the primary protocol: the secondary clustering splits (``eval.secondary_splits``, rows kept for
    comparison with reference protocols) and factor recovery are not repeated on the raw views.  The rows
    do not depend on the model, so with ``eval.raw_baseline_cache`` they are stored under
    ``$VIEWSPLIT_CACHE/raw-baselines/`` keyed by a hash of everything they depend on (:func:`cache_key`)
    and reused by later evaluations of the same data (e.g. every method of ``viewsplit bench``);
    ``protocol.raw_baselines`` in the report says whether they were computed or read.
    """
    raw_cfg = dataclasses.replace(cfg, representations=[], mine=False, secondary_splits=[], factors=False)
    key = cache_key(splits, raw_cfg) if cfg.raw_baseline_cache else None
    computed = []

    def compute() -> dict:
        computed.append(True)
        raw = evaluate(RawViews(), splits, raw_cfg, device)
        return {k: raw[k] for k in ("clustering", "classification")}

    entry = f"raw-baselines/{key}"
    rows = cached(entry, compute, enabled=key is not None)
    for k, r in rows.items():
        metrics.setdefault(k, {}).update(r)
    source = "computed" if computed else f"read from the cache ({cache_path(entry)})"
    metrics.setdefault("protocol", {})["raw_baselines"] = source
    return metrics


def cache_key(splits: DataSplits, cfg: EvalConfig) -> str | None:
    """A hash of what the raw rows depend on: each evaluated split's views, mask and labels (after
    ``eval.max_samples``), the clustering split, the evaluation settings, and the versions of viewsplit's
    evaluation code and of numpy, scikit-learn and torch.  None for data read lazily (streamed folders,
    decoded images): hashing them would read the data once more."""
    capped, _ = cap_splits(splits, cfg.max_samples)
    if not all(isinstance(x, torch.Tensor) for ds in (capped.train, capped.test) for x in ds.views):
        return None
    import sklearn

    h = hashlib.blake2b(digest_size=20)
    for ds in (capped.train, capped.test):
        for t in (*ds.views, ds.mask, ds.labels):
            if t is not None:
                h.update(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
    code = sorted(Path(__file__).parent.glob("*.py"))
    h.update(json.dumps({"eval": dataclasses.asdict(cfg), "cluster_on": splits.cluster_on, "numpy": np.__version__,
                         "sklearn": sklearn.__version__, "torch": torch.__version__}, sort_keys=True).encode())
    for f in code:
        h.update(f.read_bytes())
    return h.hexdigest()

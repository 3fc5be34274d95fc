"""Baselines in every report: the evaluation protocol run on what a few lines of numpy give, so a report
shows what learning added (``eval.raw_baselines``).

Rows (each through the same k-means protocol and probes as the learned representations,
:func:`~viewsplit.eval.evaluate.evaluate`, on the primary clustering split):

- ``raw_<v>``, ``raw_all``: view v, and every view concatenated, as the model sees them, i.e. after its
  standardisation (vector views z-scored with the train split's statistics);
- ``given_<v>``, ``given_all``: the same views as the user gave them (no standardisation), when the model
  standardises them; on pixel-like data this is often the stronger raw row;
- ``pca_<k>``: PCA of the standardised concatenation, fitted on the train split, with as many dims k as
  the method's consistent code (``C``; else ``Z`` / ``Z_0``; else its first representation);
- ``cca_<k>`` (two views) / ``gcca_<k>`` (more): regularised MAXVAR generalised CCA (:mod:`.linear`,
  linear CCA's span for two views), fitted on the complete training samples, k dims as for PCA, with the
  light ridge r = 10⁻³ (:data:`LIGHT`) that finds a shared signal under strong private variance;
- ``rcca_<k>`` / ``rgcca_<k>``: the same with the heavy ridge r = 0.5 (:data:`HEAVY`), between CCA and
  PCA.  On real features it usually clusters far better: k-means ACC of the 10-dim code averaged 0.712
  over six of the small sets of benchmarks/small_data_defaults.py (Handwritten pairs 2+3, 0+1, 1+5 and all
  six views, digits-halves, cancer-3views) with r = 10⁻³, 0.764 with 0.1, 0.790 with 0.3, 0.830 with 0.5,
  0.802 with 0.9 (Handwritten 0+1: 0.750 → 0.904).  The label-free criterion, held-out canonical
  correlation, prefers 10⁻³ on all six, so it cannot pick r: both rows are reported and the better counts.

An absent view counts as zeros (its training mean when standardised).  The rows are cached by content
(:func:`add_raw_baselines`), and :func:`versus_baselines` writes the report's summary: per metric, the
best learned representation against the best baseline row, and the margin.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..config import EvalConfig
from ..data.multiview import DataSplits, MultiViewDataset
from ..data.preprocess import Standardizer
from ..data.registry import cache_path, cached
from .evaluate import cap_splits, evaluate, extract
from .linear import GCCA, PCA

#: name prefixes of the baseline rows (every other row of a report is a learned representation)
PREFIXES = ("raw_", "given_", "pca_", "cca_", "gcca_", "rcca_", "rgcca_")
#: the GCCA rows' ridge (:class:`~viewsplit.eval.linear.GCCA` ``reg``): light (``cca_<k>``), heavy (``rcca_<k>``)
LIGHT, HEAVY = 1e-3, 0.5


def is_baseline(name: str) -> bool:
    return name.startswith(PREFIXES)


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


class Baselines(RawViews):
    """Every baseline row of the module docstring; :meth:`fit` it on the (standardised) train split first."""

    name: ClassVar[str] = "baselines"

    def __init__(self, standardizer: Standardizer | None = None):
        super().__init__()
        self.standardizer = standardizer
        self.pca: PCA | None = None
        self.gcca: dict[str, GCCA] = {}
        self.dims = 0

    def fit(self, train: MultiViewDataset, dims: int, batch_size: int = 1024, device: torch.device | str = "cpu"
            ) -> Baselines:
        raw = extract(RawViews(), train, batch_size, device)
        self.dims = dims
        self.pca = PCA.fit(raw["raw_all"], dims)
        complete = train.mask.all(1).numpy() if train.mask is not None else np.ones(len(train), dtype=bool)
        if complete.sum() >= max(2 * dims, 10):
            views = [raw[f"raw_{v}"][complete] for v in range(len(train.views))]
            name = "cca" if len(views) == 2 else "gcca"
            self.gcca = {f"{name}_{dims}": GCCA.fit(views, dims, LIGHT),
                         f"r{name}_{dims}": GCCA.fit(views, dims, HEAVY)}
        return self

    def encode(self, views: list[Tensor], mask: Tensor | None = None) -> dict[str, Tensor]:
        out = super().encode(views, mask)
        n_views, dev = len(views), views[0].device
        mask = torch.ones(len(views[0]), n_views, dtype=torch.bool, device=dev) if mask is None else mask
        pre = self.standardizer
        if pre is not None and bool(pre.active.any()):
            given = {f"given_{v}": pre.invert(v, x).flatten(1) * mask[:, v : v + 1].float()
                     for v, x in enumerate(views)}
            out.update({**given, "given_all": torch.cat(list(given.values()), 1)})
        if self.pca is not None:
            out[f"pca_{self.dims}"] = torch.from_numpy(self.pca.transform(out["raw_all"].cpu().numpy())).float()
        per_view = [out[f"raw_{v}"].cpu().numpy() for v in range(n_views)]
        for name, gcca in self.gcca.items():
            out[name] = torch.from_numpy(gcca.transform(per_view, mask.cpu().numpy())).float()
        return out


def baseline_dims(method: nn.Module, ds: MultiViewDataset, device: torch.device | str = "cpu") -> int:
    """The width the linear baselines get: the method's ``C`` (else ``Z``, ``Z_0``, else its first code)."""
    codes = extract(method, ds.subset(np.arange(min(2, len(ds)))), 2, device)  # type: ignore[arg-type]
    name = next((r for r in ("C", "Z", "Z_0") if r in codes), next(iter(codes)))
    return int(codes[name].shape[1])


def add_raw_baselines(metrics: dict, splits: DataSplits, cfg: EvalConfig, device: torch.device | str = "cpu",
                      dims: int = 10, standardizer: Standardizer | None = None) -> dict:
    """Evaluate :class:`Baselines` (``dims`` wide linear rows; ``standardizer``: the model's, for the rows
    as given) on ``splits`` and add its rows to ``metrics``' clustering and probe tables, and
    :func:`versus_baselines` as ``metrics["summary"]`` (in place; also returned).

    Only the primary protocol: the secondary clustering splits (``eval.secondary_splits``, rows kept for
    comparison with reference protocols) and factor recovery are not repeated on the baselines.  The rows
    do not depend on the model's weights, so with ``eval.raw_baseline_cache`` they are stored under
    ``$VIEWSPLIT_CACHE/raw-baselines/`` keyed by a hash of everything they depend on (:func:`cache_key`)
    and reused by later evaluations of the same data (e.g. every method of ``viewsplit bench``);
    ``protocol.raw_baselines`` in the report says whether they were computed or read.
    """
    raw_cfg = dataclasses.replace(cfg, representations=[], mine=False, secondary_splits=[], factors=False)
    key = cache_key(splits, raw_cfg, dims, standardizer) if cfg.raw_baseline_cache else None
    computed = []

    def compute() -> dict:
        computed.append(True)
        capped, _ = cap_splits(splits, cfg.max_samples)   # the train split evaluate() sees
        model = Baselines(standardizer).fit(capped.train, dims, cfg.batch_size, device)
        raw = evaluate(model, splits, raw_cfg, device)
        return {k: raw[k] for k in ("clustering", "classification")}

    entry = f"raw-baselines/{key}"
    rows = cached(entry, compute, enabled=key is not None)
    for k, r in rows.items():
        metrics.setdefault(k, {}).update(r)
    source = "computed" if computed else f"read from the cache ({cache_path(entry)})"
    metrics.setdefault("protocol", {})["raw_baselines"] = source
    metrics["summary"] = versus_baselines(metrics)
    return metrics


def versus_baselines(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per metric (k-means ``acc`` / ``nmi`` / ``ari``, each probe's accuracy): the best learned
    representation and the best baseline row (name and value, means over k-means seeds) and
    ``margin`` = learned − baseline (> 0: learning beat every baseline)."""
    scores: dict[str, dict[str, float]] = {}
    for rep, m in (metrics.get("clustering") or {}).items():
        for k in ("acc", "nmi", "ari"):
            scores.setdefault(f"kmeans_{k}", {})[rep] = m[k]["mean"]
    for rep, probes in (metrics.get("classification") or {}).items():
        for p, r in probes.items():
            scores.setdefault(f"{p}_acc", {})[rep] = r["acc"]
    out = {}
    for metric, by_rep in scores.items():
        learned = {r: s for r, s in by_rep.items() if not is_baseline(r)}
        base = {r: s for r, s in by_rep.items() if is_baseline(r)}
        if learned and base:
            lr, br = max(learned, key=learned.__getitem__), max(base, key=base.__getitem__)
            out[metric] = {"learned": lr, "learned_value": learned[lr], "baseline": br,
                           "baseline_value": base[br], "margin": learned[lr] - base[br]}
    return out


def summary_lines(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The report's summary: does the best learned representation beat the best baseline, per metric?"""
    if not summary:
        return []
    lines = ["## Against the baselines (best learned representation vs best baseline row)", "",
             "| metric | best learned | best baseline | margin | beats every baseline |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {s['learned']} {s['learned_value']:.4f} | {s['baseline']} {s['baseline_value']:.4f} "
              f"| {s['margin']:+.4f} | {'yes' if s['margin'] > 0 else 'no'} |" for m, s in summary.items()]
    return [*lines, ""]


def cache_key(splits: DataSplits, cfg: EvalConfig, dims: int = 10, standardizer: Standardizer | None = None
              ) -> str | None:
    """A hash of what the baseline rows depend on: each evaluated split's views, mask and labels (after
    ``eval.max_samples``), the clustering split, the evaluation settings, the linear rows' width, the
    standardisation's statistics, and the versions of viewsplit's evaluation code and of numpy,
    scikit-learn and torch.  None for data read lazily (streamed folders, decoded images): hashing them
    would read the data once more."""
    capped, _ = cap_splits(splits, cfg.max_samples)
    if not all(isinstance(x, torch.Tensor) for ds in (capped.train, capped.test) for x in ds.views):
        return None
    import sklearn

    h = hashlib.blake2b(digest_size=20)
    stats = list(standardizer.state_dict().values()) if standardizer is not None else []
    for t in [*(t for ds in (capped.train, capped.test) for t in (*ds.views, ds.mask, ds.labels)), *stats]:
        if t is not None:
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    code = sorted(Path(__file__).parent.glob("*.py"))
    h.update(json.dumps({"eval": dataclasses.asdict(cfg), "cluster_on": splits.cluster_on, "dims": dims,
                         "numpy": np.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__},
                        sort_keys=True).encode())
    for f in code:
        h.update(f.read_bytes())
    return h.hexdigest()

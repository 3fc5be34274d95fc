"""The evaluation suite: extract representations, cluster them, probe them, write the report.

Features are extracted in eval mode, without gradients, as the posterior means the method's
``encode`` returns (docs/evaluation.md#feature-extraction).  Clustering runs on the data set's clustering split
(``test``, or ``all`` samples for Handwritten); probes fit on train and score on test.
"""
from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from ..config import EvalConfig
from ..data.multiview import DataSplits, MultiViewDataset
from ..errors import ConfigError, DataError
from ..methods.base import ViewPredictor
from ..models.stochastic import eval_mode
from .labels import CAPPED, USE, any_labelled, counts, known
from .labels import markdown as label_rows
from .metrics import kmeans_fit_record, kmeans_protocol
from .probes import probe_params, run_probe

log = logging.getLogger(__name__)


class Encoder(Protocol):
    """What the evaluation needs of a model: a trained :class:`~viewsplit.methods.base.Method`, or a
    stand-in such as :class:`~viewsplit.eval.baselines.RawViews`."""

    name: ClassVar[str]
    training: bool

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def encode(self, views: list[torch.Tensor], mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]: ...

    def posteriors(self, views: list[torch.Tensor],
                   mask: torch.Tensor | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]: ...


def code_batches(method: Encoder, ds: MultiViewDataset, batch_size: int, device: torch.device | str,
                 codes: Callable[[list[torch.Tensor], torch.Tensor], dict[str, torch.Tensor]]
                 ) -> Iterator[dict[str, torch.Tensor]]:
    """``codes(views, mask)`` over ``ds`` batch by batch, in data-set order: flattened float32 CPU tensors.

    Each batch runs in eval mode without gradients, and the method's mode is restored before the batch
    is yielded, so a consumer that stops early leaves no state behind.
    """
    for batch in ds.batches(batch_size):
        with eval_mode(method), torch.no_grad():
            batch = batch.to(device)
            out = {k: v.detach().float().cpu().flatten(1) for k, v in codes(batch.views, batch.mask).items()}
        yield out


def _collect(method: Encoder, ds: MultiViewDataset, batch_size: int, device: torch.device | str,
             codes: Callable[[list[torch.Tensor], torch.Tensor], dict[str, torch.Tensor]]) -> dict[str, np.ndarray]:
    """:func:`code_batches` gathered into float32 arrays (the codes' own precision) of ``len(ds)`` rows,
    allocated at the first batch and filled in place (peak: the arrays plus one batch).  Read-outs that
    need more precision (ridge's eigendecomposition, MINE) widen their own copy."""
    out: dict[str, np.ndarray] = {}
    start = 0
    for part in code_batches(method, ds, batch_size, device, codes):
        stop = start + next((len(v) for v in part.values()), 0)
        for k, v in part.items():
            if k not in out:
                out[k] = np.empty((len(ds), v.shape[1]), dtype=np.float32)
            out[k][start:stop] = v.numpy()
        start = stop
    return out


def extract(method: Encoder, ds: MultiViewDataset, batch_size: int = 1024, device: torch.device | str = "cpu",
            mask: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """``method.encode`` over ``ds`` in eval mode and data-set order; float32 arrays per representation.

    ``mask`` (N, V) overrides the data set's availability mask (for missing-view protocols).
    """
    if mask is not None:
        ds = ds.with_mask(mask)
    return check_finite(_collect(method, ds, batch_size, device, method.encode), ds.name)


def check_finite(reps: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """``reps``, after a :class:`DataError` naming a representation with NaN or Inf values on data set ``name``."""
    for k, arr in reps.items():
        if not np.isfinite(arr).all():
            raise DataError(f"representation {k!r} has non-finite values on data set {name!r}")
    return reps


def extract_samples(method: Encoder, ds: MultiViewDataset, batch_size: int = 1024, device: torch.device | str = "cpu",
                    seed: int = 0) -> dict[str, np.ndarray]:
    """One posterior sample μ + σ ⊙ ε (seeded) of every representation the method gives as a Gaussian posterior."""
    g = torch.Generator().manual_seed(seed)

    def sample(views: list[torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: mu + std * torch.randn(mu.shape, generator=g).to(mu.device)
                for k, (mu, std) in method.posteriors(views, mask).items()}

    return _collect(method, ds, batch_size, device, sample)


def compose(reps: dict[str, np.ndarray], n_views: int, best_view: int) -> dict[str, np.ndarray]:
    """Add ``C+V_best`` and ``C+V_all`` (docs/evaluation.md#representations) when a method exposes C and V codes."""
    spec = [f"V_{v}" for v in range(n_views)]
    out = dict(reps)
    if not 0 <= best_view < n_views:   # for every method: a setting that means nothing is a mistake, not ignored
        raise ConfigError(f"eval.best_view: {best_view} is not a view index (the data has {n_views} views)")
    if "C" in reps and all(k in reps for k in spec):
        out["C+V_best"] = np.concatenate([reps["C"], reps[spec[best_view]]], 1)
        out["C+V_all"] = np.concatenate([reps["C"], *(reps[k] for k in spec)], 1)
    return out


def select(reps: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
    if not wanted:
        return reps
    unknown = [w for w in wanted if w not in reps]
    if unknown:
        raise ConfigError(f"eval.representations: {unknown} not available; this method gives {list(reps)}")
    return {k: reps[k] for k in wanted}


def note(message: str) -> bool:
    """Log an evaluation progress line on the ``viewsplit`` logger; True, so that it can filter a comprehension."""
    log.info(message)
    return True



def labelled(features: np.ndarray, on: np.ndarray) -> np.ndarray:
    """The rows of ``features`` where ``on``; the array itself (no copy) when every row is labelled."""
    return features if on.all() else features[on]


def cap_splits(splits: DataSplits, max_samples: int) -> tuple[DataSplits, dict[str, str]]:
    """``splits`` with each split of more than ``max_samples`` samples (``eval.max_samples``, 0 = no cap)
    replaced by the subsample ``sort(default_rng(0).choice(n, max_samples, replace=False))``, and the record
    of what each split contributes.  Applied before extraction, so a 1M-sample set is evaluated at the cost
    of ``max_samples`` per split (and an on-disk split reads only the chosen rows)."""
    out: dict[str, MultiViewDataset] = {}
    record: dict[str, str] = {}
    for name in ("train", "test"):
        ds = getattr(splits, name)
        n = len(ds)
        if 0 < max_samples < n:
            ds = ds.subset(np.sort(np.random.default_rng(0).choice(n, size=max_samples, replace=False)))
            record[name] = (f"a seeded subsample of {max_samples} of {n} samples (numpy default_rng(0), without "
                            "replacement, in data-set order)")
        else:
            record[name] = f"all {n} samples"
        out[name] = ds
    return DataSplits(out["train"], out["test"], splits.cluster_on, splits.info), record


def evaluate(method: Encoder, splits: DataSplits, cfg: EvalConfig, device: torch.device | str = "cpu",
             masks: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)) -> dict[str, Any]:
    """The full protocol on every representation; returns the ``metrics.json`` body (without timing).

    ``masks`` (train, test) replace the splits' availability masks; then each split goes through
    :func:`cap_splits` (``eval.max_samples``).  Representations are extracted for every sample kept;
    k-means scores and probes use the labelled ones among them (:mod:`~viewsplit.eval.labels`; the
    report's label counts are of the kept samples), and are left out when none has a label.
    """
    train, test = (d if m is None else d.with_mask(m) for d, m in zip((splits.train, splits.test), masks))
    splits, evaluated = cap_splits(DataSplits(train, test, splits.cluster_on, splits.info), cfg.max_samples)
    capped = (len(splits.train), len(splits.test)) != (len(train), len(test))
    n_views = len(splits.train.views)
    tr = select(compose(extract(method, splits.train, cfg.batch_size, device), n_views, cfg.best_view),
                cfg.representations)
    te = select(compose(extract(method, splits.test, cfg.batch_size, device), n_views, cfg.best_view),
                cfg.representations)
    y_tr, y_te = known(splits.train), known(splits.test)
    on_tr, on_te = y_tr >= 0, y_te >= 0
    k = int(max(y_tr.max(), y_te.max())) + 1 if any_labelled(splits) else 0

    def features(split: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The labelled samples' features and labels of ``split``."""
        if split == "test":
            return {r: labelled(f, on_te) for r, f in te.items()}, y_te[on_te]
        if split == "train":
            return {r: labelled(f, on_tr) for r, f in tr.items()}, y_tr[on_tr]
        return ({r: np.concatenate([labelled(tr[r], on_tr), labelled(te[r], on_te)]) for r in tr},
                np.concatenate([y_tr[on_tr], y_te[on_te]]))

    def clustering(split: str) -> dict[str, Any]:
        if not cfg.kmeans_seeds or not k:
            return {}
        feats, y = features(split)
        return {r: kmeans_protocol(f, y, k, cfg.kmeans_seeds, cfg.kmeans_n_init, cfg.kmeans_fit_samples,
                                    cfg.kmeans_solver)
                for r, f in feats.items() if note(f"eval: k-means on {r} ({split} split, {cfg.kmeans_seeds} seeds)")}

    def classification() -> dict[str, Any]:
        if not (on_tr.any() and on_te.any()):
            return {}
        (ftr, ytr), (fte, yte) = features("train"), features("test")
        return {r: {p: run_probe(p, ftr[r], ytr, fte[r], yte, cfg.knn_k, cfg.probe_solver)
                    for p in cfg.probes if note(f"eval: probe {p} on {r}")} for r in tr}

    primary = "train+test" if splits.cluster_on == "all" else "test"
    result: dict[str, Any] = {
        "dataset": splits.train.name,
        "method": type(method).name,
        "split": "all" if splits.cluster_on == "all" else "test",
        "labels": counts(splits, USE + (CAPPED if capped else "")),
        "clustering": clustering(primary),
        "classification": classification(),
    }
    secondary = [s for s in cfg.secondary_splits if s != primary]
    if secondary:
        result["secondary"] = {s: {"clustering": clustering(s)} for s in secondary}
    if splits.train.factors is not None and splits.test.factors is not None and cfg.factors:
        from .factors import factor_recovery

        f_tr = {k: f.numpy() for k, f in splits.train.factors.items()}
        f_te = {k: f.numpy() for k, f in splits.test.factors.items()}
        result["factors"] = factor_recovery(tr, te, f_tr, f_te, y_tr, y_te, cfg.readout_mlp)
    if (cfg.redundancy or cfg.mine) and "C" in te and any(r.startswith("V_") for r in te):
        from .redundancy import held_out_redundancy

        note("eval: redundancy of C in each V_v (posterior samples, read-outs)")
        train_samples, test_samples = (extract_samples(method, d, cfg.batch_size, device, seed)
                                       for seed, d in enumerate((splits.train, splits.test)))
        result["redundancy"] = held_out_redundancy(tr, te, train_samples, test_samples, mlp=cfg.readout_mlp,
                                                   mine_runs=cfg.mine_runs if cfg.mine else 0,
                                                   mine_epochs=cfg.mine_epochs)
    if isinstance(method, ViewPredictor):
        from .prediction import prediction_report

        note("eval: missing-view prediction")
        result["prediction"] = prediction_report(method, splits.train, splits.test, cfg.batch_size, device)
    result["protocol"] = protocol_record(cfg, splits, k, evaluated)
    sizes = {"test": int(on_te.sum()), "train": int(on_tr.sum()), "train+test": int(on_tr.sum() + on_te.sum())}
    if k:
        result["protocol"]["kmeans"]["fit"] = {s: kmeans_fit_record(sizes[s], cfg.kmeans_fit_samples)
                                               for s in [primary, *secondary]}
    return result


def protocol_record(cfg: EvalConfig, splits: DataSplits, k: int, samples: dict[str, str]) -> dict[str, Any]:
    """The ``protocol`` section of a report; ``samples``: what each split contributes (:func:`cap_splits`)."""
    import scipy
    import sklearn

    return {
        "features": "posterior mean, eval mode, no gradients",
        "samples": {"max_samples": cfg.max_samples, **samples},
        "kmeans": {"n_clusters": k or None, "n_init": cfg.kmeans_n_init, "seeds": list(range(cfg.kmeans_seeds)),
                   "init": "k-means++", "std": "population (ddof=0)", "fit_samples": cfg.kmeans_fit_samples,
                   "solver": cfg.kmeans_solver},
        "probe_solver": cfg.probe_solver,
        "probes": {p: probe_params(p, cfg.probe_solver).replace("knn_k", str(cfg.knn_k)) for p in cfg.probes},
        "probe_fit": "labelled train samples, StandardScaler fitted on their features; scored on the labelled test "
                     "samples",
        "best_view": cfg.best_view,
        "model_selection": "final epoch (no checkpoint is chosen on test data)",
        "data": splits.info,
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "scikit-learn": sklearn.__version__},
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------------- report
def _pm(d: dict[str, Any]) -> str:
    return f"{d['mean']:.4f} ± {d['std']:.4f}"


def markdown(metrics: dict[str, Any], view_names: list[str] | None = None) -> str:
    """A human-readable ``metrics.md``: one clustering table and one probe table."""
    lines = [f"# {metrics['method']} on {metrics['dataset']}", ""]
    if view_names:
        lines += ["Views: " + ", ".join(f"V_{i} = {n}" for i, n in enumerate(view_names)), ""]
    if metrics.get("labels"):
        lines += label_rows(metrics["labels"])
    if metrics.get("summary"):
        from .baselines import summary_lines

        lines += summary_lines(metrics["summary"])
    clus = metrics.get("clustering") or {}
    if clus:
        lines += [f"## k-means clustering (split: {metrics['split']}; mean ± std over "
                  f"{len(next(iter(clus.values()))['acc']['per_seed'])} seeds)", "",
                  "| representation | ACC | NMI | ARI |", "|---|---|---|---|"]
        lines += [f"| {r} | {_pm(m['acc'])} | {_pm(m['nmi'])} | {_pm(m['ari'])} |" for r, m in clus.items()]
        lines.append("")
    for split, sec in (metrics.get("secondary") or {}).items():
        if not sec["clustering"]:
            continue
        lines += [f"### k-means on split {split} (secondary row, for comparison with reference protocols)", "",
                  "| representation | ACC | NMI | ARI |", "|---|---|---|---|"]
        lines += [f"| {r} | {_pm(m['acc'])} | {_pm(m['nmi'])} | {_pm(m['ari'])} |"
                  for r, m in sec["clustering"].items()]
        lines.append("")
    cls = metrics.get("classification") or {}
    probes = list(next(iter(cls.values()), {}))
    if probes:
        lines += ["## Probes (fit on train, scored on test): accuracy / macro-F1", "",
                  "| representation | " + " | ".join(probes) + " |", "|---" * (len(probes) + 1) + "|"]
        lines += [f"| {r} | " + " | ".join(f"{m[p]['acc']:.4f} / {m[p]['f1_macro']:.4f}" for p in probes) + " |"
                  for r, m in cls.items()]
        lines.append("")
    if metrics.get("factors"):
        from .factors import markdown as factor_rows

        lines += factor_rows(metrics["factors"])
    if metrics.get("redundancy"):
        from .redundancy import markdown as redundancy_rows

        lines += redundancy_rows(metrics["redundancy"])
    for w in metrics.get("training_warnings", []):
        lines += [f"**Training warning**: {w}", ""]
    pred = metrics.get("prediction")
    if pred:
        lines += ["## Missing-view prediction on the test split (MSE per element)", "",
                  "| predicted | from views | MSE | mean-view baseline | ratio |", "|---|---|---|---|---|"]
        lines += [f"| {v} | {p['from_views']} | {p['mse']:.5f} | {p['mean_baseline_mse']:.5f} | {p['ratio']:.3f} |"
                  for v, p in pred.items()]
        lines.append("")
    lines += protocol_lines(metrics.get("protocol") or {})
    t = metrics.get("timing")
    if t:
        lines += ["## Timing", "", ", ".join(f"{k}: {v:.1f}" for k, v in t.items()), ""]
    return "\n".join(lines)


def protocol_lines(protocol: dict[str, Any]) -> list[str]:
    """The samples each split contributed (``eval.max_samples``) and how k-means was fitted, for a report."""
    samples = {s: r for s, r in (protocol.get("samples") or {}).items() if s != "max_samples"}
    fit = (protocol.get("kmeans") or {}).get("fit") or {}
    raw = protocol.get("raw_baselines")
    if not samples and not fit and not raw:
        return []
    lines = ["## Samples", ""]
    if samples:
        lines.append(f"Evaluated (eval.max_samples = {protocol['samples']['max_samples']}): "
                     + "; ".join(f"{s} split: {r}" for s, r in samples.items()) + ".")
    if fit:
        lines.append("k-means: " + "; ".join(f"{s}: {r}" for s, r in fit.items()) + ".")
    if raw:
        lines.append(f"Raw-view rows: {raw}.")
    return [*lines, ""]

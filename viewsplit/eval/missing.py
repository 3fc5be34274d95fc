"""Missing-view evaluation (docs/evaluation.md, "Missing views"): one row per view combination, and imputation.

For each evaluated view combination S, ``mask[:, v] = (v ∈ S)`` for every sample of the
clustering split (the test split, or all samples for Handwritten); the representations are
extracted under that mask and evaluated with the k-means protocol (``eval.kmeans_seeds`` /
``eval.kmeans_n_init``) and the probes (``eval.probes``) of the standard evaluation.  Each probe
is fitted once per representation on the train split's features extracted under the train
split's own mask: complete views, unless training used masks (``data.missing_rate`` > 0), then
the same masked training data; the record (``probe_train_features``) says which.  Probes score
the test samples.  Per-view representations of a view outside S (``V_v``, ``Z_v``, ``B_v``; zeros)
are left out of S's rows.  The mean over the combinations is reported per representation.

Methods with ``predict`` (MRDD, the factorisation autoencoder) are also scored on **imputation**:
for each combination S other than all views, the missing views of the test samples are predicted
from S, their error compared with the train split's mean view
(:func:`~viewsplit.eval.prediction.prediction_error`), and the completed samples (imputed views in
place of the missing ones, every view marked present) are encoded and probed next to the masked
encoding of S.

Each combination, and each imputation, logs a progress line with an ETA (``viewsplit eval --missing``
prints them to stderr).
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np
import torch

from ..config import EvalConfig
from ..data.multiview import DataSplits, MultiViewDataset, subset_mask
from ..engine.logger import Countdown
from ..errors import DataError
from ..methods.base import Method, ViewPredictor
from .evaluate import _pm, cap_splits, compose, extract, protocol_lines, protocol_record, select
from .labels import CAPPED, any_labelled, counts, known, labelled_splits
from .labels import markdown as label_rows
from .metrics import kmeans_protocol
from .prediction import predict_views, prediction_error
from .probes import FittedProbe, fit_probe

_PER_VIEW = re.compile(r"^[A-Za-z]+_(\d+)$")


def view_combinations(n_views: int, max_combinations: int = 16, seed: int = 0) -> list[tuple[int, ...]]:
    """The view subsets to evaluate, ordered by size, then by view index.

    V ≤ 4: all 2^V − 1 non-empty subsets.  Otherwise every single view, all views, and a sample
    drawn with ``np.random.default_rng(seed)`` from the other subsets, ``max_combinations`` in all
    (never fewer than the V + 1 fixed ones).
    """
    subsets = [c for k in range(1, n_views + 1) for c in itertools.combinations(range(n_views), k)]
    if n_views <= 4 or max_combinations >= len(subsets):
        return subsets
    middle = [c for c in subsets if 1 < len(c) < n_views]
    n_extra = max(0, max_combinations - n_views - 1)
    chosen = {middle[i] for i in np.random.default_rng(seed).choice(len(middle), size=n_extra, replace=False)}
    return [c for c in subsets if len(c) in (1, n_views) or c in chosen]


def present_representations(reps: dict[str, np.ndarray], views: Sequence[int]) -> dict[str, np.ndarray]:
    """``reps`` without the per-view representations (``V_v``, ``Z_v``, ``B_v``) of views outside ``views``."""
    return {r: f for r, f in reps.items() if (m := _PER_VIEW.match(r)) is None or int(m.group(1)) in views}


class _Encoder:
    """Extract, compose and select the representations of a data set, as the standard evaluation does."""

    def __init__(self, method: Method, cfg: EvalConfig, n_views: int, device: torch.device | str):
        self.method, self.cfg, self.n_views, self.device = method, cfg, n_views, device

    def __call__(self, ds: MultiViewDataset, views: Sequence[int] | None = None) -> dict[str, np.ndarray]:
        """All representations of ``ds``; with ``views``, every sample has exactly those views."""
        mask = None if views is None else subset_mask(len(ds), self.n_views, views)
        reps = compose(extract(self.method, ds, self.cfg.batch_size, self.device, mask), self.n_views,
                       self.cfg.best_view)
        reps = select(reps, self.cfg.representations)
        return reps if views is None else present_representations(reps, views)


def evaluate_missing(method: Method, splits: DataSplits, cfg: EvalConfig, device: torch.device | str = "cpu",
                     seed: int = 0) -> dict:
    """The per-combination protocol (and imputation for methods with ``predict``); the ``missing.json`` body.

    Each split first goes through :func:`~viewsplit.eval.evaluate.cap_splits` (``eval.max_samples``).  It
    scores against the classes, so all of it (the imputation errors too) runs on the labelled samples
    among those kept (the label counts are of the kept samples).
    """
    capped, samples = cap_splits(splits, cfg.max_samples)
    if not any_labelled(capped):
        raise DataError(f"data set {splits.train.name!r}: no sample is labelled; the missing-view protocol scores "
                        "k-means and probes against the classes (`viewsplit eval` without --missing reports what "
                        "needs no labels)")
    cut = (len(capped.train), len(capped.test)) != (len(splits.train), len(splits.test))
    label_record = counts(capped, "the missing-view protocol (imputation included) uses the labelled samples "
                                  "only; training used every sample" + (CAPPED if cut else ""))
    splits = labelled_splits(capped)
    n_views = splits.train.n_views
    combos = view_combinations(n_views, cfg.missing_combinations, seed)
    encode = _Encoder(method, cfg, n_views, device)
    y_tr, y_te = known(splits.train), known(splits.test)
    k = int(max(y_tr.max(), y_te.max())) + 1
    cluster_ds = splits.all if splits.cluster_on == "all" else splits.test
    y_cl, n_test = known(cluster_ds), len(splits.test)   # the test samples are the last ones of `all`
    probes = {r: {p: fit_probe(p, f, y_tr, cfg.knn_k, cfg.probe_solver) for p in cfg.probes}
              for r, f in encode(splits.train).items()}
    predicts = isinstance(method, ViewPredictor)
    progress = Countdown("eval --missing", len(combos) + (len(combos) - 1 if predicts else 0))
    rows = []
    for views in combos:
        progress.start(f"views {list(views)}")
        for r, f in encode(cluster_ds, views).items():
            rows.append({"views": list(views), "representation": r,
                         "clustering": kmeans_protocol(f, y_cl, k, cfg.kmeans_seeds, cfg.kmeans_n_init,
                                                       cfg.kmeans_fit_samples, cfg.kmeans_solver)
                         if cfg.kmeans_seeds else {},
                         "classification": {p: fp.score(f[-n_test:], y_te) for p, fp in probes[r].items()}})
    assert splits.train.mask is not None   # validate() sets it
    masked_training = not bool(splits.train.mask.all())
    result = {
        "dataset": splits.train.name,
        "method": type(method).name,
        "split": "all" if splits.cluster_on == "all" else "test",
        "view_names": list(splits.train.view_names or []),
        "labels": label_record,
        "combinations": [list(c) for c in combos],
        "combination_seed": seed,
        "probe_train_features": (f"train split under its training mask (data.missing_rate="
                                 f"{splits.info.get('missing_rate')}, missing_seed={splits.info.get('missing_seed')}):"
                                 " training used masks" if masked_training else "train split, complete views"),
        "rows": rows,
        "mean": mean_over_combinations(rows, list(probes)),
    }
    if isinstance(method, ViewPredictor):
        result["imputation"] = imputation(encode, method, splits, combos, probes, rows, progress)
    progress.finish()
    result["protocol"] = protocol_record(cfg, splits, k, samples)
    return result


def mean_over_combinations(rows: list[dict], representations: list[str]) -> dict[str, dict]:
    """Per representation (in the given order): the mean over its combinations of the k-means means
    and probe accuracies."""
    out = {}
    for r in representations:
        sel = [row for row in rows if row["representation"] == r]
        out[r] = {"n_combinations": len(sel),
                  "clustering": {m: float(np.mean([row["clustering"][m]["mean"] for row in sel]))
                                 for m in sel[0]["clustering"]},
                  "classification": {p: float(np.mean([row["classification"][p]["acc"] for row in sel]))
                                     for p in sel[0]["classification"]}}
    return out


def imputation(encode: _Encoder, predictor: ViewPredictor, splits: DataSplits, combos: list[tuple[int, ...]],
               probes: dict[str, dict[str, FittedProbe]], rows: list[dict],
               progress: Countdown | None = None) -> dict:
    """For each combination S ≠ all views: imputation error of the missing test views (predicted by
    ``predictor``, the method ``encode`` evaluates), and probe accuracy of the completed samples against
    that of the masked encoding (from ``rows``); ``progress`` logs a line per combination."""
    test = splits.test
    truth, train_views = test.stack_views_float(), splits.train.stack_views_float()
    masked_acc = {(tuple(row["views"]), row["representation"]): row["classification"] for row in rows}
    y_te = known(test)
    out = []
    for views in combos:
        if len(views) == test.n_views:
            continue
        if progress is not None:
            progress.start(f"imputing the other views from {list(views)}")
        preds = predict_views(predictor, test, list(views), encode.cfg.batch_size, encode.device)
        missing = [v for v in range(test.n_views) if v not in views]
        completed = MultiViewDataset([truth[v] if v in views else preds[v] for v in range(test.n_views)],
                                     test.labels, list(test.view_names or []), name=test.name)
        imputed = encode(completed)
        out.append({"views": list(views), "imputed_views": missing,
                    "errors": {f"view_{v}": prediction_error(preds[v], truth[v], train_views[v]) for v in missing},
                    "classification": {r: {p: {"masked": masked_acc[views, r][p]["acc"],
                                                "imputed": fp.score(imputed[r], y_te)["acc"]}
                                            for p, fp in probes[r].items()}
                                       for r in present_representations(imputed, views)}})
    return {"split": "test", "method": "predict(views, mask) from the available views; completed samples "
                                       "encoded with every view present", "combinations": out}


# ---------------------------------------------------------------------------- report
def markdown(result: dict) -> str:
    """``missing.md``: the per-combination table, the means, and the imputation tables."""
    names = result["view_names"]

    def label(views: list[int]) -> str:
        return "+".join(names[v] for v in views)

    probes = list(result["rows"][0]["classification"]) if result["rows"] else []
    clus = ["k-means ACC", "NMI"]
    lines = [f"# Missing views: {result['method']} on {result['dataset']}", "",
             f"Every sample of the clustering split ({result['split']}) keeps exactly the listed views.  "
             f"Probes (accuracy) fitted on the {result['probe_train_features']}; scored on the test split.", "",
             *(label_rows(result["labels"]) if result.get("labels") else []),
             "| views | representation | " + " | ".join(clus + probes) + " |",
             "|---" * (2 + len(clus) + len(probes)) + "|"]
    for row in result["rows"]:
        c = row["clustering"]
        cells = [_pm(c["acc"]), _pm(c["nmi"])] if c else ["–", "–"]
        cells += [f"{row['classification'][p]['acc']:.4f}" for p in probes]
        lines.append(f"| {label(row['views'])} | {row['representation']} | " + " | ".join(cells) + " |")
    lines += ["", f"## Mean over the {len(result['combinations'])} combinations (a per-view representation: "
              "over those holding its view)", "",
              "| representation | combinations | " + " | ".join(clus + probes) + " |",
              "|---" * (2 + len(clus) + len(probes)) + "|"]
    for r, m in result["mean"].items():
        cells = [f"{m['clustering'][k]:.4f}" for k in ("acc", "nmi")] if m["clustering"] else ["–", "–"]
        cells += [f"{m['classification'][p]:.4f}" for p in probes]
        lines.append(f"| {r} | {m['n_combinations']} | " + " | ".join(cells) + " |")
    imp = result.get("imputation")
    if imp:
        lines += ["", "## Imputation of the missing test views (`predict`)", "",
                  "| given views | imputed view | MSE | mean-view baseline | ratio |", "|---|---|---|---|---|"]
        for c in imp["combinations"]:
            for v in c["imputed_views"]:
                e = c["errors"][f"view_{v}"]
                lines.append(f"| {label(c['views'])} | {names[v]} | {e['mse']:.5f} | {e['mean_baseline_mse']:.5f} | "
                             f"{e['ratio']:.3f} |")
        lines += ["", "Probe accuracy, masked encoding → encoding of the completed samples:", "",
                  "| given views | representation | " + " | ".join(probes) + " |", "|---" * (2 + len(probes)) + "|"]
        for c in imp["combinations"]:
            for r, accs in c["classification"].items():
                lines.append(f"| {label(c['views'])} | {r} | "
                             + " | ".join(f"{accs[p]['masked']:.4f} → {accs[p]['imputed']:.4f}" for p in probes) + " |")
    lines += ["", *protocol_lines(result.get("protocol") or {})]
    t = result.get("timing")
    if t:
        lines += [", ".join(f"{k}: {v:.1f}" for k, v in t.items())]
    return "\n".join(lines) + "\n"

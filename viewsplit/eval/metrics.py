"""Clustering metrics and the k-means protocol (docs/evaluation.md#clustering)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from .kmeans import assign, kmeans_fit

KMEANS_SOLVERS = ("torch", "sklearn")


def cluster_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Hungarian accuracy: the best one-to-one matching of clusters to classes, over n.

    Works for rectangular contingency tables (#clusters ≠ #classes); unmatched clusters count
    as errors.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    m = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(m, (p, t), 1)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return float(m[rows, cols].sum() / len(y_true))


def cluster_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI (arithmetic normalisation) and ARI."""
    return {"acc": cluster_acc(y_true, y_pred), "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
            "ari": float(adjusted_rand_score(y_true, y_pred))}


def summarise(values: list[float]) -> dict:
    """Mean, population std (ddof 0) and the per-seed values."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "per_seed": [float(v) for v in a]}


def kmeans_protocol(features: np.ndarray, labels: np.ndarray, n_clusters: int, seeds: int = 10,
                    n_init: int = 10, fit_samples: int = 0, solver: str = "torch") -> dict:
    """k-means with ``n_init`` inits for seeds s = 0 … seeds−1; mean ± std per metric.

    ``solver="sklearn"`` fits ``KMeans(K, n_init=n_init, random_state=s)``; ``"torch"`` the same algorithm
    with a seed's inits batched in float32 (:mod:`viewsplit.eval.kmeans`, seeded by s).  With
    ``fit_samples`` > 0 and more samples than that, seed s fits on ``fit_samples`` points drawn without
    replacement by ``numpy.random.default_rng(s)`` and assigns every point to its nearest centre; the
    metrics are always computed on all points.  Fitting costs O(n · K · d) per Lloyd iteration and
    init, so this bounds the cost at large N; below the threshold the fit is the full one.
    """
    if solver not in KMEANS_SOLVERS:
        raise ValueError(f"unknown k-means solver {solver!r}; choose one of {KMEANS_SOLVERS}")
    runs: dict[str, list[float]] = {"acc": [], "nmi": [], "ari": []}
    n = len(features)
    for s in range(seeds):
        fit_on = features
        if 0 < fit_samples < n:
            fit_on = features[np.sort(np.random.default_rng(s).choice(n, size=fit_samples, replace=False))]
        if solver == "torch":
            pred = assign(features, kmeans_fit(fit_on, n_clusters, n_init, seed=s))
        else:
            pred = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=s).fit(fit_on).predict(features)
        for k, v in cluster_scores(labels, pred).items():
            runs[k].append(v)
    return {k: summarise(v) for k, v in runs.items()}


def kmeans_fit_record(n: int, fit_samples: int) -> str:
    """How :func:`kmeans_protocol` fitted on ``n`` samples, for the report."""
    if 0 < fit_samples < n:
        return (f"fitted on a seeded subsample of {fit_samples} of {n} points (numpy default_rng(seed), without "
                "replacement), every point assigned to its nearest centre")
    return f"fitted on all {n} points"

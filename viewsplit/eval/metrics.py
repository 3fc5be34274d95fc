"""Clustering metrics and the k-means protocol (protocols.md §3)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


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
                    n_init: int = 10) -> dict:
    """``KMeans(K, n_init=n_init, random_state=s)`` for s = 0 … seeds−1; mean ± std per metric."""
    runs = {"acc": [], "nmi": [], "ari": []}
    for s in range(seeds):
        pred = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=s).fit_predict(features)
        for k, v in cluster_scores(labels, pred).items():
            runs[k].append(v)
    return {k: summarise(v) for k, v in runs.items()}

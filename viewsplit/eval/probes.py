"""Classification probes fitted on the train split and scored on the test split (protocols.md §4).

Features are standardised with a ``StandardScaler`` fitted on the train features only.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score, precision_score
from sklearn.preprocessing import StandardScaler

PROBE_PARAMS = {
    "logreg": "LogisticRegression(C=1.0, max_iter=1000, lbfgs)",
    "linear_svm": "LinearSVC(C=1.0, max_iter=5000)",
    "knn": "KNeighborsClassifier(n_neighbors=knn_k)",
    "svc_rbf": "SVC() (RBF, C=1, gamma='scale'; the MRDD/DMRIB reference probe)",
}


def make_probe(name: str, knn_k: int = 10, seed: int = 0):
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=1000)
    if name == "linear_svm":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=1.0, max_iter=5000, random_state=seed)
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=knn_k)
    if name == "svc_rbf":
        from sklearn.svm import SVC

        return SVC()
    raise ValueError(f"unknown probe {name!r}")


@dataclass
class FittedProbe:
    """A probe fitted on train features, with the scaler fitted on the same features."""

    scaler: StandardScaler
    clf: Any

    def score(self, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
        """Accuracy, macro precision and macro F1 on (x_test, y_test)."""
        pred = self.clf.predict(self.scaler.transform(x_test))
        return {"acc": float(accuracy_score(y_test, pred)),
                "precision_macro": float(precision_score(y_test, pred, average="macro", zero_division=0)),
                "f1_macro": float(f1_score(y_test, pred, average="macro", zero_division=0))}


def fit_probe(name: str, x_train: np.ndarray, y_train: np.ndarray, knn_k: int = 10) -> FittedProbe:
    """Standardise with the train features' statistics and fit probe ``name`` on them."""
    scaler = StandardScaler().fit(x_train)
    clf = make_probe(name, knn_k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_train), y_train)
    return FittedProbe(scaler, clf)


def run_probe(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              knn_k: int = 10) -> dict[str, float]:
    """Fit probe ``name`` on (x_train, y_train); accuracy, macro precision and macro F1 on the test split."""
    return fit_probe(name, x_train, y_train, knn_k).score(x_test, y_test)

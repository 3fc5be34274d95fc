"""Classification probes fitted on the train split and scored on the test split (docs/evaluation.md#probes).

Features are standardised with a ``StandardScaler`` fitted on the train features only.

Two solvers (``eval.probe_solver``):

* ``torch`` (default): the logistic and linear-SVM probes solve the same convex problems as
  scikit-learn's ``LogisticRegression(C=1)`` and ``LinearSVC(C=1)`` full-batch in torch
  (:class:`TorchLinearProbe`); on 60k Fashion-MNIST features they agree with scikit-learn to
  within about 0.001 accuracy in a fraction of its time (tests/test_probes.py,
  benchmarks/probe_speed.py).
* ``sklearn``: the scikit-learn estimators themselves.

kNN is scikit-learn's exact search under both solvers: a torch brute-force search was slower
(37.9 s against 21.8 s for 10k queries among 60k 522-d points, benchmarks/probe_speed.py).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, f1_score, precision_score
from sklearn.preprocessing import StandardScaler

SOLVERS = ("torch", "sklearn")

PROBE_PARAMS = {
    "sklearn": {
        "logreg": "LogisticRegression(C=1.0, max_iter=1000, lbfgs)",
        "linear_svm": "LinearSVC(C=1.0, max_iter=5000)",
        "knn": "KNeighborsClassifier(n_neighbors=knn_k)",
    },
    "torch": {
        "logreg": "multinomial logistic regression, L2 as sklearn C=1.0 (intercept unpenalised), full-batch "
                  "L-BFGS (float64 weights, float32 feature products) on features whitened by (Σ + λI)^-1/2, "
                  "max-abs gradient ≤ 1e-4, ≤ 1000 iterations",
        "linear_svm": "one-vs-rest squared hinge, L2 as LinearSVC C=1.0 (intercept a penalised feature), full-batch "
                      "L-BFGS (float64 weights, float32 feature products) on features whitened by (Σ + λI)^-1/2, "
                      "max-abs gradient ≤ 1e-4, ≤ 1000 iterations",
        "knn": "KNeighborsClassifier(n_neighbors=knn_k)",
    },
}
SVC_PARAMS = "SVC() (RBF, C=1, gamma='scale'; the MRDD/DMRIB reference probe; scikit-learn under either solver)"


def probe_params(name: str, solver: str = "torch") -> str:
    """The record of probe ``name`` under ``solver`` for the report."""
    return SVC_PARAMS if name == "svc_rbf" else PROBE_PARAMS[solver][name]


class TorchLinearProbe:
    """A linear classifier with scikit-learn's L2 objective, fitted full-batch with L-BFGS in torch.

    With n samples, λ = 1 / (C n) and scores z = x W + b, it minimises

    * ``loss="logistic"``: (1/n) Σ_i −log softmax(z_i)_{y_i} + (λ/2) ‖W‖² (b unpenalised): the
      minimiser of ``LogisticRegression(C)``'s C Σ_i CE_i + ½‖W‖²; with two classes the binary
      (sigmoid) form with one weight vector, as scikit-learn fits it;
    * ``loss="squared_hinge"``: one-vs-rest, (1/n) Σ_i Σ_c max(0, 1 − t_ic z_ic)² + (λ/2) ‖[W; b]‖²
      with t_ic = ±1: ``LinearSVC(C)``'s objective (liblinear treats the intercept as a penalised
      feature of value 1); one column for two classes.

    L-BFGS runs on whitened features x' = x A, A = (M + λI)^(-1/2) with M = XᵀX / n (the second
    moment of the design optimised), and W = A W'.  The objective is unchanged (the penalty is
    ‖A W'‖²) but its Hessian is close to the identity, so L-BFGS needs far fewer iterations (on 60k
    × 522 Fashion-MNIST features, 97 instead of about 490 for the logistic loss).  It stops when the
    max-abs gradient (of the mean-loss objective, whitened coordinates) is ≤ ``tol``, sklearn's lbfgs
    criterion and value.

    ``data_dtype``: the precision of the whitened features and of the two products with them per
    evaluation (the weights, the loss and L-BFGS stay float64).  The evaluation uses float32: the
    products are memory-bound, so it halves their cost, and at the default ``tol`` the accuracy
    agrees with float64 to about 0.001 (benchmarks/probe_speed.py); float64 reaches tolerances
    near machine precision (the tests against scikit-learn's optimum).
    """

    classes_: np.ndarray
    coef_: torch.Tensor
    intercept_: torch.Tensor
    n_iter_: int

    def __init__(self, loss: str = "logistic", C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4,
                 history: int = 20, data_dtype: torch.dtype = torch.float64):
        if loss not in ("logistic", "squared_hinge"):
            raise ValueError(f"unknown loss {loss!r}")
        self.loss, self.C, self.max_iter, self.tol, self.history = loss, C, max_iter, tol, history
        self.data_dtype = data_dtype

    def fit(self, x: np.ndarray, y: np.ndarray) -> TorchLinearProbe:
        self.classes_, yi = np.unique(np.asarray(y), return_inverse=True)
        xd = torch.as_tensor(np.asarray(x)).to(self.data_dtype)
        n, k = xd.shape[0], len(self.classes_)
        penalise_bias = self.loss == "squared_hinge"
        if penalise_bias:
            xd = torch.cat([xd, xd.new_ones(n, 1)], 1)
        lam = 1.0 / (self.C * n)
        evals, vecs = torch.linalg.eigh((xd.T @ xd).double() / n)
        a = (vecs * (evals.clamp_min(0) + lam).rsqrt()) @ vecs.T
        a2 = a @ a
        xt = (xd @ a.to(xd.dtype)).T.contiguous()  # (d, n): both products below then run at full speed
        y_t = torch.as_tensor(yi)
        if k == 2:
            target = y_t.double()[:, None]
        else:
            target = torch.zeros(n, k, dtype=torch.float64)
            target[torch.arange(n), y_t] = 1.0
        if self.loss == "squared_hinge":
            target = 2.0 * target - 1.0
        cols = target.shape[1]
        w = torch.zeros(xt.shape[0] + (0 if penalise_bias else 1), cols, dtype=torch.float64, requires_grad=True)
        nw = xt.shape[0]

        def closure() -> torch.Tensor:
            with torch.no_grad():
                wm = w[:nw]
                z = (wm.T.to(xt.dtype) @ xt).T.double()
                if not penalise_bias:
                    z = z + w[nw]
                loss, g_z = _loss_and_grad(self.loss, z, target)
                pw = a2 @ wm
                grad = torch.empty_like(w)
                grad[:nw] = (xt @ g_z.to(xt.dtype)).double() + lam * pw
                if not penalise_bias:
                    grad[nw] = g_z.sum(0)
                w.grad = grad
                return loss + 0.5 * lam * (wm * pw).sum()

        opt = torch.optim.LBFGS([w], lr=1, max_iter=self.max_iter, max_eval=2 * self.max_iter,
                                tolerance_grad=self.tol, tolerance_change=1e-14, history_size=self.history,
                                line_search_fn="strong_wolfe")
        opt.step(closure)
        self.n_iter_ = int(opt.state[w]["n_iter"])
        coef = a @ w.detach()[:nw]
        self.coef_, self.intercept_ = (coef[:-1], coef[-1]) if penalise_bias else (coef, w.detach()[nw])
        return self

    def decision_function(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.float64) @ self.coef_ + self.intercept_

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = self.decision_function(x)
        idx = (z[:, 0] > 0).long() if z.shape[1] == 1 else z.argmax(1)
        return self.classes_[idx.numpy()]


def _loss_and_grad(loss: str, z: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss over samples and its gradient with respect to the scores ``z`` (n, c)."""
    n = z.shape[0]
    if loss == "squared_hinge":
        margin = (1.0 - target * z).clamp_min(0)
        return margin.pow(2).sum() / n, -2.0 * target * margin / n
    if z.shape[1] == 1:  # binary logistic, target in {0, 1}
        return (torch.nn.functional.softplus(z) - target * z).sum() / n, (torch.sigmoid(z) - target) / n
    lse = torch.logsumexp(z, 1, keepdim=True)
    return (lse - (z * target).sum(1, keepdim=True)).sum() / n, (torch.exp(z - lse) - target) / n


def make_probe(name: str, knn_k: int = 10, seed: int = 0, solver: str = "torch") -> Any:
    """An unfitted probe (scikit-learn estimator interface: ``fit``, ``predict``)."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown probe solver {solver!r}; choose one of {SOLVERS}")
    if name == "svc_rbf":
        from sklearn.svm import SVC

        return SVC()
    if solver == "torch" and name in ("logreg", "linear_svm"):
        return TorchLinearProbe("logistic" if name == "logreg" else "squared_hinge", data_dtype=torch.float32)
    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=1.0, max_iter=1000)
    if name == "linear_svm":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=1.0, max_iter=5000, random_state=seed)
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=knn_k)
    raise ValueError(f"unknown probe {name!r}")


@dataclass
class FittedProbe:
    """A probe fitted on train features, with the scaler fitted on the same features.  kNN and the torch
    linear probes work on float32 (the features' own precision; kNN's distances cost half, neighbours of
    standardised features are unchanged but for exact ties); scikit-learn's linear models and SVC get
    float64, as they would convert to it."""

    scaler: StandardScaler
    clf: Any
    dtype: type = np.float64

    def score(self, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
        """Accuracy, macro precision and macro F1 on (x_test, y_test)."""
        pred = self.clf.predict(self.scaler.transform(x_test).astype(self.dtype, copy=False))
        return {"acc": float(accuracy_score(y_test, pred)),
                "precision_macro": float(precision_score(y_test, pred, average="macro", zero_division=0)),
                "f1_macro": float(f1_score(y_test, pred, average="macro", zero_division=0))}


def fit_probe(name: str, x_train: np.ndarray, y_train: np.ndarray, knn_k: int = 10,
              solver: str = "torch") -> FittedProbe:
    """Standardise with the train features' statistics and fit probe ``name`` on them."""
    scaler = StandardScaler().fit(x_train)
    clf = make_probe(name, knn_k, solver=solver)
    dtype = np.float32 if name == "knn" or isinstance(clf, TorchLinearProbe) else np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(scaler.transform(x_train).astype(dtype, copy=False), y_train)
    return FittedProbe(scaler, clf, dtype)


def run_probe(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              knn_k: int = 10, solver: str = "torch") -> dict[str, float]:
    """Fit probe ``name`` on (x_train, y_train); accuracy, macro precision and macro F1 on the test split."""
    return fit_probe(name, x_train, y_train, knn_k, solver).score(x_test, y_test)

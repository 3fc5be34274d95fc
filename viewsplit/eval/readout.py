"""Held-out read-outs: how much of a target a code holds, fitted on train codes, scored on test codes.

Used by factor recovery (docs/evaluation.md#factor-recovery) and the held-out redundancy measures
(docs/evaluation.md#redundancy-of-c-in-v_v).

* :func:`ridge_r2` — ridge regression (alpha chosen by leave-one-out CV on the training split, as
  scikit-learn's ``RidgeCV`` chooses it; :func:`ridge_loo`)
  on standardised inputs; R² on the test split, averaged over the target's dimensions.
* :func:`mlp_r2` — the same with a small MLP (one hidden layer of 64, early-stopped on 10 % of the
  training split), fitted on at most ``max_train`` seeded training samples.
* :func:`mlp_accuracy` — the class read-out of the same MLP shape (a classifier), held-out accuracy: a
  code can hide the class from a logistic probe and still hold it.
* :func:`gaussian_nll` — the held-out NLL (nats per sample, with the constant) of a target y given
  x under a linear-Gaussian q(y | x) = N(Wx + b, Σ) (ridge mean, full residual covariance from the
  training split), and of y under a Gaussian fitted to y alone; their difference is the held-out
  predictive information in nats (a Barber–Agakov-style estimate: it does not saturate like a DV
  bound, and scores only what generalises).  y is standardised with the training statistics.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

ALPHAS = np.logspace(-3, 3, 13)


def _scaled(x_tr: np.ndarray, x_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardised float64 copies (codes arrive as float32; ridge's eigendecomposition needs float64)."""
    x_tr, x_te = np.asarray(x_tr, dtype=np.float64), np.asarray(x_te, dtype=np.float64)
    sc = StandardScaler().fit(x_tr)
    return sc.transform(x_tr), sc.transform(x_te)


def _2d(y: np.ndarray) -> np.ndarray:
    return np.asarray(y, dtype=np.float64).reshape(len(y), -1)


def ridge_loo(x: np.ndarray, y: np.ndarray, alphas: np.ndarray = ALPHAS) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge regression of ``y`` (n, t) on ``x`` (n, d), alpha chosen by exact leave-one-out error:
    coefficients (d, t), intercept (t,) and the alpha.

    The selection of ``RidgeCV(alphas).fit(x, y)`` (efficient LOO, one alpha for all targets, intercept
    unpenalised), computed from one eigendecomposition of the centred XᵀX = V diag(s) Vᵀ instead of
    an SVD of X: with U = X V diag(s)^-½, the hat matrix is H = 11ᵀ/n + U diag(s/(s+α)) Uᵀ, and the
    LOO residual of sample i is (y_i − ŷ_i) / (1 − H_ii).  O(n d²) once, then O(n d t) per alpha.
    """
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    s, v = np.linalg.eigh(xc.T @ xc)
    keep = s > s.max() * 1e-12
    s, v = s[keep], v[:, keep]
    u = (xc @ v) / np.sqrt(s)
    uty = u.T @ yc
    u2 = u * u
    n = len(x)
    errors = []
    for alpha in alphas:
        shrink = s / (s + alpha)
        resid = yc - u @ (shrink[:, None] * uty)
        h = 1.0 / n + u2 @ shrink
        errors.append(float(np.mean((resid / (1.0 - h)[:, None]) ** 2)))
    alpha = float(alphas[int(np.argmin(errors))])
    coef = v @ ((v.T @ (xc.T @ yc)) / (s + alpha)[:, None])
    return coef, y_mean - x_mean @ coef, alpha


def ridge_fit_predict(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge predictions (alpha by :func:`ridge_loo`) on the standardised training and test inputs."""
    a, b = _scaled(x_tr, x_te)
    coef, intercept, _ = ridge_loo(a, _2d(y_tr))
    return a @ coef + intercept, b @ coef + intercept


def ridge_r2(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray) -> float:
    return float(r2_score(_2d(y_te), ridge_fit_predict(x_tr, y_tr, x_te)[1]))


def _at_most(x: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` seeded rows of (x, y), all of them when there are no more."""
    if len(x) <= n:
        return x, y
    keep = np.random.default_rng(seed).choice(len(x), n, replace=False)
    return x[keep], y[keep]


def _mlp_predict(kind: type, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, seed: int) -> np.ndarray:
    """Fit ``kind`` (``MLPRegressor`` / ``MLPClassifier``: one hidden layer of 64, early-stopped on 10 %) on the
    standardised training codes and predict the test codes."""
    a, b = _scaled(x_tr, x_te)
    model = kind(hidden_layer_sizes=(64,), early_stopping=True, validation_fraction=0.1, max_iter=500,
                 random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(a, y_tr)
    return model.predict(b)


def mlp_r2(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, seed: int = 0,
           max_train: int = 20_000) -> float:
    from sklearn.neural_network import MLPRegressor

    x_tr, y_tr = _at_most(x_tr, y_tr, max_train, seed)
    ys = StandardScaler().fit(_2d(y_tr))
    t = ys.transform(_2d(y_tr))
    pred = _mlp_predict(MLPRegressor, x_tr, t.ravel() if t.shape[1] == 1 else t, x_te, seed)
    return float(r2_score(_2d(y_te), ys.inverse_transform(pred.reshape(len(x_te), -1))))


def mlp_accuracy(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, seed: int = 0,
                 max_train: int = 20_000) -> float:
    """Held-out accuracy of an MLP classifier (one hidden layer of 64, early-stopped) on standardised codes."""
    from sklearn.neural_network import MLPClassifier

    x_tr, y_tr = _at_most(x_tr, y_tr, max_train, seed)
    return float((_mlp_predict(MLPClassifier, x_tr, y_tr, x_te, seed) == y_te).mean())


def _gauss_nll(resid_tr: np.ndarray, resid_te: np.ndarray) -> float:
    """Mean NLL of the test residuals under N(0, Σ) with Σ their training covariance (+ a small ridge)."""
    d = resid_tr.shape[1]
    cov = np.atleast_2d(np.cov(resid_tr, rowvar=False, bias=True)) + 1e-6 * np.eye(d)
    _, logdet = np.linalg.slogdet(cov)
    maha = np.einsum("nd,nd->n", resid_te @ np.linalg.inv(cov), resid_te)
    return float(0.5 * (maha.mean() + logdet + d * math.log(2 * math.pi)))


def gaussian_nll(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray) -> dict[str, float]:
    """``nll_given``: NLL of y given x; ``nll_marginal``: of y alone; ``info``: their difference (nats);
    ``ridge_r2``: the held-out R² of the same ridge predictions (y standardised, so each dimension weighs
    equally in the choice of alpha, as in the R² average)."""
    ys = StandardScaler().fit(_2d(y_tr))
    t_tr, t_te = ys.transform(_2d(y_tr)), ys.transform(_2d(y_te))
    p_tr, p_te = ridge_fit_predict(x_tr, t_tr, x_te)
    given = _gauss_nll(t_tr - p_tr, t_te - p_te)
    marginal = _gauss_nll(t_tr, t_te)
    return {"nll_given": given, "nll_marginal": marginal, "info": marginal - given,
            "ridge_r2": float(r2_score(t_te, p_te))}

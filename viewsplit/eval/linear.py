"""Linear baselines a learned code must beat: PCA of the concatenated views and MAXVAR generalised CCA.

MAXVAR GCCA (Kettenring 1971; Carroll 1968) finds k unit-variance directions G shared by all views,

    max_G  Σ_v ‖P_v G‖²   s.t.  Gᵀ G / n = I,     P_v = X_v (X_vᵀ X_v / n + r_v I)⁻¹ X_vᵀ / n,

i.e. the top eigenvectors of the sum of the views' (ridge-)regularised projections; with two views the
span is that of linear CCA, and each eigenvalue is 1 + ρ_i (ρ_i the i-th canonical correlation, r = 0).
It is solved in feature space, as the top eigenvectors of ZᵀZ / n with Z = [X_v C_v^{-1/2}]_v (C_v the
regularised covariance ``(1 − reg)·Σ_v + reg·tr(Σ_v)/d_v · I``), so the cost grows with the views'
widths, not with n.  A view wider than ``max_dim`` is first reduced to its top ``max_dim`` principal
components (fitted on the same samples).  A new sample's code is the mean, over its present views,
of the per-view ridge regressions of G, W_v = C_v⁻¹ X_vᵀ G / n; for complete training samples that is
close to G itself.  Reference: docs/evaluation.md#baselines.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _top_eigh(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues of the symmetric ``a`` (descending) and their eigenvectors."""
    w, u = np.linalg.eigh(a)
    return w[::-1][:k], u[:, ::-1][:, :k]


@dataclass
class PCA:
    """The top ``k`` principal directions of the rows of ``x`` (centred on their mean)."""

    mean: np.ndarray
    components: np.ndarray      # (d, k)

    @classmethod
    def fit(cls, x: np.ndarray, k: int) -> PCA:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(0)
        xc = x - mean
        k = min(k, *xc.shape)
        if xc.shape[1] <= 4096:   # the d × d covariance is cheap and exact
            _, comps = _top_eigh(xc.T @ xc, k)
        else:                     # wide rows: a seeded truncated SVD
            from sklearn.utils.extmath import randomized_svd

            _, _, vt = randomized_svd(xc, k, random_state=0)
            comps = vt.T
        return cls(mean, comps)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components


@dataclass
class GCCA:
    """MAXVAR generalised CCA (module docstring); ``reduce[v]`` is view v's PCA when it was wider than
    ``max_dim``, ``weights[v]`` the (d_v, k) regression of the shared G on view v."""

    means: list[np.ndarray]
    reduce: list[PCA | None]
    weights: list[np.ndarray]
    eigenvalues: np.ndarray     # of Σ_v P_v: 1 + ρ_i for two unregularised views

    @classmethod
    def fit(cls, views: list[np.ndarray], k: int, reg: float = 1e-3, max_dim: int = 1024) -> GCCA:
        """Fit on complete samples: ``views[v]`` (n, d_v), the same n rows in every view."""
        if not 0 <= reg < 1:
            raise ValueError(f"GCCA reg must be in [0, 1), got {reg}")
        n = len(views[0])
        means, reduce, xs, inv_sqrt, covs = [], [], [], [], []
        for x in views:
            x = np.asarray(x, dtype=np.float64).reshape(n, -1)
            p = PCA.fit(x, max_dim) if x.shape[1] > max_dim else None
            means.append(x.mean(0))
            xc = (x - means[-1]) if p is None else p.transform(x)
            reduce.append(p)
            cov = xc.T @ xc / n
            d = cov.shape[0]
            cov = (1 - reg) * cov + reg * max(float(np.trace(cov)) / d, 1e-12) * np.eye(d)
            w, u = np.linalg.eigh(cov)
            w = np.maximum(w, 1e-12 * w.max())
            xs.append(xc)
            inv_sqrt.append((u / np.sqrt(w)) @ u.T)
            covs.append(cov)
        z = np.concatenate([x @ b for x, b in zip(xs, inv_sqrt)], 1)
        k = min(k, z.shape[1], n)
        lam, u = _top_eigh(z.T @ z / n, k)
        g = z @ u / np.sqrt(np.maximum(lam, 1e-12))
        weights = [np.linalg.solve(c, x.T @ g / n) for x, c in zip(xs, covs)]
        return cls(means, reduce, weights, lam)

    def transform(self, views: list[np.ndarray], mask: np.ndarray | None = None) -> np.ndarray:
        """The mean over each sample's present views (``mask`` (n, V); all present if None) of X_v W_v."""
        n = len(views[0])
        mask = np.ones((n, len(views)), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        total = np.zeros((n, self.weights[0].shape[1]))
        for v, x in enumerate(views):
            x = np.asarray(x, dtype=np.float64).reshape(n, -1)
            p = self.reduce[v]
            xc = (x - self.means[v]) if p is None else p.transform(x)
            total += (xc @ self.weights[v]) * mask[:, v : v + 1]
        return total / np.maximum(mask.sum(1, keepdims=True), 1)

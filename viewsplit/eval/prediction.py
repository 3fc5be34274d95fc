"""Missing-view prediction: error of predicted views against a mean-view baseline, and image grids."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.multiview import MultiViewDataset, subset_mask
from ..methods.base import ViewPredictor


@torch.no_grad()
def predict_views(method: ViewPredictor, ds: MultiViewDataset, given: list[int], batch_size: int = 512,
                  device: torch.device | str = "cpu") -> list[Tensor]:
    """``method.predict`` for every sample of ``ds`` when only the views in ``given`` are available."""
    method.eval()
    out: list[list[Tensor]] = [[] for _ in range(ds.n_views)]
    for batch in ds.with_mask(subset_mask(len(ds), ds.n_views, given)).batches(batch_size):
        b = batch.to(device)
        for v, p in enumerate(method.predict(b.views, b.mask)):
            out[v].append(p.float().cpu())
    return [torch.cat(p) for p in out]


@torch.no_grad()
def prediction_report(method: ViewPredictor, train: MultiViewDataset, test: MultiViewDataset, batch_size: int = 512,
                      device: torch.device | str = "cpu") -> dict:
    """For each view v, predict it from all the other views on the test split.

    Reports the mean squared error per element and that of the baseline that always predicts the
    train split's mean view; ``ratio`` < 1 means the prediction beats the mean.  Streams over
    batches (the mean view by :func:`~viewsplit.data.stats.view_moments`), so memory does not grow
    with the split sizes.
    """
    from ..data.stats import view_moments

    method.eval()
    means = [m.float() for m, _ in view_moments(train, batch_size)]
    out = {}
    for v in range(test.n_views):
        given = [w for w in range(test.n_views) if w != v]
        sq_err = base_err = 0.0
        count = 0
        for batch in test.with_mask(subset_mask(len(test), test.n_views, given)).batches(batch_size):
            b = batch.to(device)
            pred, truth = method.predict(b.views, b.mask)[v].float().cpu(), batch.views[v]
            sq_err += float((pred - truth).double().pow(2).sum())
            base_err += float((means[v] - truth).double().pow(2).sum())
            count += truth.numel()
        out[f"view_{v}"] = {"from_views": given, "mse": sq_err / count, "mean_baseline_mse": base_err / count,
                            "ratio": sq_err / base_err}
    return out


def prediction_error(pred: Tensor, truth: Tensor, train_view: Tensor) -> dict[str, float]:
    """MSE per element of ``pred`` against ``truth``, that of the baseline predicting the mean of
    ``train_view`` (the train split's view) for every sample, and their ratio (< 1: beats the mean)."""
    mse = float((pred - truth).pow(2).mean())
    base = float((train_view.mean(0, keepdim=True) - truth).pow(2).mean())
    return {"mse": mse, "mean_baseline_mse": base, "ratio": mse / base}


def save_grid(path: str | Path, rows: list[Tensor], pad: int = 2) -> None:
    """Save rows of images (each ``(n, C, H, W)``, values clipped to [0, 1]) as one PNG."""
    from PIL import Image

    n = max(r.shape[0] for r in rows)
    c, h, w = rows[0].shape[1:]
    canvas = np.ones((len(rows) * (h + pad) + pad, n * (w + pad) + pad, c), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, img in enumerate(row.clamp(0, 1).permute(0, 2, 3, 1).numpy()):
            canvas[pad + i * (h + pad): pad + i * (h + pad) + h, pad + j * (w + pad): pad + j * (w + pad) + w] = img
    arr = (canvas * 255).round().astype(np.uint8)
    Image.fromarray(arr[..., 0] if c == 1 else arr, "L" if c == 1 else "RGB").save(path)

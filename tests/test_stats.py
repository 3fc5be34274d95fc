"""Streaming statistics equal the in-memory ones, for in-memory and memory-mapped data."""
import numpy as np
import pytest
import torch

from viewsplit.data import DataConfig, MultiViewDataset, load_dataset
from viewsplit.data.stats import view_moments


def test_view_moments_equal_numpy_in_memory_and_streamed(tmp_path):
    rng = np.random.default_rng(0)
    x0 = rng.integers(0, 256, (1001, 1, 4, 4)).astype(np.uint8)
    x1 = (rng.normal(size=(1001, 7)) * 50 + 1000).astype(np.float32)   # a large mean: a naive Σx² would lose digits
    (tmp_path / "f").mkdir()
    np.save(tmp_path / "f" / "view0.npy", x0)
    np.save(tmp_path / "f" / "view1.npy", x1)
    mem = MultiViewDataset([torch.from_numpy(x0), torch.from_numpy(x1)])
    disk = load_dataset(DataConfig(name="folder", path=str(tmp_path / "f"), stream=True, test_fraction=0.5)).train
    rows = disk.views[0].rows
    for ds, idx, bs in ((mem, np.arange(1001), 100), (disk, rows, 64)):
        for (mu, sd), x in zip(view_moments(ds, bs), (x0.astype(np.float32) / np.float32(255), x1)):   # as batched
            ref = np.asarray(x[idx], dtype=np.float64).reshape(len(idx), *x.shape[1:])
            assert np.allclose(mu.numpy(), ref.mean(0), rtol=1e-10) and np.allclose(sd.numpy(), ref.std(0), rtol=1e-8)


def test_streamed_prediction_report_equals_the_in_memory_errors():
    from viewsplit.eval.prediction import predict_views, prediction_error, prediction_report
    from viewsplit.methods import build_method, get_method
    from viewsplit.methods.base import DataSpec

    splits = load_dataset(DataConfig(name="synthetic", n_samples=300))
    torch.manual_seed(0)
    method = build_method("fae", get_method("fae").Config(), DataSpec.of(splits.train))
    report = prediction_report(method, splits.train, splits.test, batch_size=32)
    truth, train_views = splits.test.stack_views_float(), splits.train.stack_views_float()
    for v in range(splits.test.n_views):
        given = [w for w in range(splits.test.n_views) if w != v]
        ref = prediction_error(predict_views(method, splits.test, given)[v], truth[v], train_views[v])
        got = report[f"view_{v}"]
        assert got["from_views"] == given
        for k in ("mse", "mean_baseline_mse", "ratio"):
            assert got[k] == pytest.approx(ref[k], rel=1e-5)

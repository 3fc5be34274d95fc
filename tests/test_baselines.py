"""Raw-view baselines in every report: k-means and probes on the standardised input views."""
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from viewsplit.config import load_config
from viewsplit.engine.run import run_all
from viewsplit.eval.metrics import kmeans_protocol


@pytest.fixture
def digits_npz(tmp_path):
    """A new user's small 2-view set: 8×8 digits and a rotated, noisy copy (issue 21), first 600 samples."""
    x, y = load_digits(return_X_y=True)
    x, y = x[:600], y[:600]
    rot = np.rot90(x.reshape(-1, 8, 8), axes=(1, 2)).reshape(-1, 64)
    rot = rot + np.random.default_rng(0).normal(scale=2.0, size=rot.shape)
    path = tmp_path / "digits.npz"
    np.savez(path, view0=x, view1=rot, labels=y)
    return path


def test_reports_hold_raw_view_rows(tmp_path, digits_npz):
    torch.set_num_threads(1)
    path = digits_npz
    cfg = load_config(None, ["method=autoencoder", "data.name=npz", f"data.path={path}", "stages.train.epochs=1",
                             "eval.kmeans_seeds=2", "eval.probes=[logreg]", "eval.figures=false",
                             "eval.secondary_splits=[train]", "train.threads=1"])
    run, metrics = run_all(cfg, tmp_path / "run")
    for table in (metrics["clustering"], metrics["classification"], metrics["secondary"]["train"]["clustering"]):
        assert {"C", "raw_0", "raw_1", "raw_all"} <= set(table)
    # the raw row is the protocol on the views as the model sees them: standardised with the train split's statistics
    train, test = run.splits.train, run.splits.test
    assert np.allclose(train.views[1].mean(0).numpy(), 0, atol=1e-4)
    assert not np.allclose(test.views[1].mean(0).numpy(), 0, atol=1e-4)  # train statistics, not the test split's own
    feats = np.concatenate([v.numpy() for v in test.views], 1).astype(np.float64)
    want = kmeans_protocol(feats, test.labels.numpy(), 10, seeds=2)
    assert metrics["clustering"]["raw_all"]["acc"]["per_seed"] == pytest.approx(want["acc"]["per_seed"])
    md = (tmp_path / "run" / "metrics.md").read_text()
    assert "| raw_all |" in md and "| raw_0 |" in md
    assert "raw_all" in json.loads((tmp_path / "run" / "metrics.json").read_text())["classification"]

"""Clustering metrics against docs/evaluation.md#clustering test vectors, and the probe protocol."""
import numpy as np
import pytest

from viewsplit.eval.metrics import cluster_acc, cluster_scores, kmeans_protocol, summarise
from viewsplit.eval.probes import run_probe

VECTORS = [
    ([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 2], 1.0, 1.0, 1.0),
    ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1], 0.833333, 0.478704, 0.324324),
    ([0, 0, 1, 1], [0, 1, 2, 2], 0.75, 0.8, 0.571429),
    ([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0], 0.333333, 0.0, 0.0),
    ([0, 1, 2, 0, 1, 2], [0, 0, 1, 1, 2, 2], 0.5, 0.369070, -0.25),
    ([0, 0, 0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 1], 0.75, 0.188722, 0.125),
]


@pytest.mark.parametrize("y, p, acc, nmi, ari", VECTORS)
def test_metric_vectors(y, p, acc, nmi, ari):
    s = cluster_scores(np.array(y), np.array(p))
    assert s["acc"] == pytest.approx(acc, abs=1e-6) and s["nmi"] == pytest.approx(nmi, abs=1e-6)
    assert s["ari"] == pytest.approx(ari, abs=1e-6)


def test_metrics_invariant_to_cluster_relabelling():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    perm = rng.permutation(5)
    assert cluster_scores(y, p) == pytest.approx(cluster_scores(y, perm[p]))
    assert cluster_acc(y, p) >= 1 / 5


def test_summary_uses_population_std():
    s = summarise([1.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "per_seed": [1.0, 3.0]}


def test_kmeans_protocol_on_separated_blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 2)) * 0.1 + np.array([[0, 0], [5, 5], [-5, 5]])[y]
    r = kmeans_protocol(x, y, 3, seeds=3)
    assert r["acc"]["mean"] == 1.0 and r["nmi"]["std"] == 0.0 and len(r["ari"]["per_seed"]) == 3


@pytest.mark.parametrize("probe", ["logreg", "linear_svm", "knn", "svc_rbf"])
def test_probes_fit_on_train_and_score_on_test(probe):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = rng.normal(size=(200, 3)) + 3 * y[:, None]
    r = run_probe(probe, x[:150], y[:150], x[150:], y[150:])
    assert r["acc"] > 0.95 and set(r) == {"acc", "precision_macro", "f1_macro"}
    # labels are not learnable from noise: chance level
    r = run_probe(probe, rng.normal(size=(150, 3)), y[:150], rng.normal(size=(50, 3)), y[150:])
    assert r["acc"] < 0.75


def test_report_omits_probe_table_when_no_probe_ran():
    # `viewsplit eval RUN eval.probes=[]` (clustering only) must not print an empty probe table
    from viewsplit.eval.evaluate import markdown

    score = summarise([0.5, 0.5])
    metrics = {"method": "m", "dataset": "d", "split": "test", "classification": {"C": {}},
               "clustering": {"C": {"acc": score, "nmi": score, "ari": score}}}
    text = markdown(metrics)
    assert "k-means" in text and "Probes" not in text


def test_extraction_fills_float32_arrays_in_data_set_order_in_eval_mode():
    """``extract`` gives every sample's code once, in order, as float32 (the codes' own values), whatever the
    batch size; codes are computed in eval mode and the module's training mode is restored afterwards."""
    import torch
    from torch import nn

    from viewsplit.data.multiview import MultiViewDataset
    from viewsplit.eval.evaluate import _collect, code_batches, extract

    class Codes(nn.Module):   # dropout with p=1 zeroes everything in training mode: a test of eval mode
        name = "codes"

        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(1.0)

        def encode(self, views, mask=None):
            return {"a": self.drop(views[0]), "b": views[1].flatten(1) * 3}

    rng = np.random.default_rng(0)
    x0 = torch.from_numpy(rng.normal(size=(103, 4)).astype(np.float32))
    x1 = torch.from_numpy(rng.integers(0, 256, (103, 1, 2, 3)).astype(np.uint8))
    ds = MultiViewDataset([x0, x1])
    m = Codes().train()
    for bs in (10, 103, 500):
        out = extract(m, ds, bs)
        assert m.training and set(out) == {"a", "b"}
        assert out["a"].dtype == out["b"].dtype == np.float32 and out["b"].shape == (103, 6)
        assert np.array_equal(out["a"], x0.numpy())
        assert np.array_equal(out["b"], (x1.float() / 255).flatten(1).mul(3).numpy())
    first = next(code_batches(m, ds, 10, "cpu", m.encode))   # an abandoned iteration leaves the mode alone
    assert m.training and first["a"].shape == (10, 4) and first["a"].dtype == torch.float32
    assert _collect(m, ds, 10, "cpu", lambda views, mask: {}) == {}   # no codes (e.g. no Gaussian posteriors)

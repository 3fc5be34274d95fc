"""The torch probe solvers against scikit-learn: same optimum on small problems, same accuracy
(within 0.005) on varied data sets; the seeded k-means subsample."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from viewsplit.eval.metrics import kmeans_fit_record, kmeans_protocol
from viewsplit.eval.probes import TorchLinearProbe, run_probe


def _mixture(seed: int, n: int, d: int, k: int, sep: float, weights=None):
    """Anisotropic, overlapping Gaussian classes with correlated features."""
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=weights)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    x = (rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, d)) @ mix + sep * rng.normal(size=(k, d))[y]
    return x, y


def _redundant_binary(seed: int):
    """Imbalanced (80/20) binary labels; a duplicated, a rescaled and a constant feature."""
    x, y = _mixture(seed, 4000, 12, 2, 0.2, weights=[0.8, 0.2])
    x = np.concatenate([x, x[:, :3], 1000 * x[:, 3:4], np.full((len(x), 1), 5.0)], 1)
    return x, y


def _nonlinear(seed: int):
    """Three classes with ids 3, 7, 9 seen through a random tanh map of a 6-d latent."""
    rng = np.random.default_rng(seed)
    z, y = _mixture(seed, 4000, 6, 3, 1.0)
    x = np.tanh(z @ rng.normal(size=(6, 48))) + 0.3 * rng.normal(size=(4000, 48))
    return x, np.array([3, 7, 9])[y]


DATASETS = {
    "10 classes, 40-d": lambda: _mixture(0, 5000, 40, 10, 0.25),
    "imbalanced binary, redundant": lambda: _redundant_binary(1),
    "3 classes, nonlinear": lambda: _nonlinear(2),
}


@pytest.mark.parametrize("probe", ["logreg", "linear_svm"])
@pytest.mark.parametrize("data", list(DATASETS))
def test_torch_probe_accuracy_matches_sklearn(data, probe):
    x, y = DATASETS[data]()
    n_tr = int(0.6 * len(y))
    args = (x[:n_tr], y[:n_tr], x[n_tr:], y[n_tr:])
    ours, ref = run_probe(probe, *args, solver="torch"), run_probe(probe, *args, solver="sklearn")
    assert 0.25 < ref["acc"] < 0.99   # neither trivial nor at chance, or the comparison says little
    assert abs(ours["acc"] - ref["acc"]) <= 0.005, (ours, ref)


@pytest.mark.parametrize("k", [2, 3])
def test_logistic_optimum_is_sklearns(k):
    # the same penalty semantics: the coefficients themselves agree at a tight tolerance
    x, y = _mixture(3, 400, 5, k, 0.8)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=100_000).fit(x, y)
    ours = TorchLinearProbe("logistic", tol=1e-10).fit(x, y)
    assert np.allclose(ours.coef_.numpy().T, ref.coef_, atol=2e-4)
    assert np.allclose(ours.intercept_.numpy(), ref.intercept_, atol=2e-4)


@pytest.mark.parametrize("k", [2, 3])
def test_squared_hinge_optimum_is_linearsvcs(k):
    x, y = _mixture(4, 400, 5, k, 0.8)
    ref = LinearSVC(C=1.0, tol=1e-10, max_iter=1_000_000, dual=True).fit(x, y)
    ours = TorchLinearProbe("squared_hinge", tol=1e-10).fit(x, y)
    assert np.allclose(ours.coef_.numpy().T, ref.coef_, atol=2e-4)
    assert np.allclose(ours.intercept_.numpy(), ref.intercept_, atol=2e-4)


def test_kmeans_subsample_fits_on_a_seeded_subset_and_scores_every_point():
    x, y = _mixture(6, 600, 4, 3, 3.0)
    full = kmeans_protocol(x, y, 3, seeds=2, n_init=2)
    sub = kmeans_protocol(x, y, 3, seeds=2, n_init=2, fit_samples=150)
    assert sub == kmeans_protocol(x, y, 3, seeds=2, n_init=2, fit_samples=150)   # seeded
    assert sub != full and sub["acc"]["mean"] > 0.9                                  # a real subsample, still good
    assert kmeans_protocol(x, y, 3, seeds=2, n_init=2, fit_samples=600) == full      # no subsample at n ≤ threshold
    assert "150 of 600" in kmeans_fit_record(600, 150) and kmeans_fit_record(600, 600) == "fitted on all 600 points"


def test_report_records_the_probe_solver_and_the_kmeans_fit():
    import torch

    from viewsplit.config import EvalConfig
    from viewsplit.data import DataConfig, load_dataset
    from viewsplit.eval.evaluate import evaluate
    from viewsplit.methods import build_method, get_method
    from viewsplit.methods.base import DataSpec

    splits = load_dataset(DataConfig(name="synthetic", n_samples=300))
    torch.manual_seed(0)
    method = build_method("autoencoder", get_method("autoencoder").Config(), DataSpec.of(splits.train))
    cfg = EvalConfig(kmeans_seeds=1, kmeans_n_init=1, kmeans_fit_samples=100, probes=["logreg", "knn"],
                     secondary_splits=["train"], figures=False)
    proto = evaluate(method, splits, cfg)["protocol"]
    assert proto["probe_solver"] == "torch" and "L-BFGS" in proto["probes"]["logreg"]
    assert proto["probes"]["knn"] == "KNeighborsClassifier(n_neighbors=10)"
    assert proto["kmeans"]["fit"] == {"test": "fitted on all 60 points", "train": kmeans_fit_record(240, 100)}
    assert "subsample of 100 of 240" in proto["kmeans"]["fit"]["train"]

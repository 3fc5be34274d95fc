"""The torch k-means (eval.kmeans_solver=torch) against scikit-learn's KMeans on varied data."""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from viewsplit.eval.kmeans import _lloyd, _plusplus, assign, kmeans_fit
from viewsplit.eval.metrics import cluster_acc, kmeans_protocol


def _inertia(x: np.ndarray, centres: np.ndarray) -> float:
    d2 = ((np.asarray(x, np.float64)[:, None, :] - np.asarray(centres, np.float64)[None]) ** 2).sum(2)
    return float(d2.min(1).sum())


def _sets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    digits = load_digits()
    x, y = make_blobs(1500, 40, centers=6, cluster_std=5.0, random_state=1)
    yg = rng.integers(0, 8, 2000)
    gauss = rng.normal(size=(2000, 60)) + 0.6 * rng.normal(size=(8, 60))[yg]
    # unequal, anisotropic clusters far from the origin (float32 cancellation if not centred)
    ya = rng.integers(0, 4, 1200)
    aniso = 100.0 + rng.normal(size=(1200, 5)) * np.array([5.0, 1, 1, 0.2, 0.2]) + 3 * np.eye(4, 5)[ya]
    return {"digits": (digits.data, digits.target), "blobs": (x, y), "gauss": (gauss, yg), "aniso": (aniso, ya)}


@pytest.mark.parametrize("name", ["digits", "blobs", "gauss", "aniso"])
def test_inertia_and_accuracy_match_sklearn(name):
    x, y = _sets()[name]
    k = len(np.unique(y))
    for seed in range(2):
        ref = KMeans(k, n_init=10, random_state=seed).fit(x)
        ours = kmeans_fit(x, k, n_init=10, seed=seed).numpy()
        assert _inertia(x, ours) <= 1.005 * _inertia(x, ref.cluster_centers_)
        assert abs(cluster_acc(y, assign(x, torch.from_numpy(ours))) - cluster_acc(y, ref.labels_)) <= 0.03


def test_lloyd_reaches_a_fixed_point_and_plusplus_picks_data_points():
    x, _ = make_blobs(400, 3, centers=4, random_state=0)
    xt = torch.tensor(x, dtype=torch.float32)
    x2 = (xt * xt).sum(1)
    init = _plusplus(xt, x2, 4, 3, torch.Generator().manual_seed(0))
    assert init.shape == (3, 4, 3)
    assert all(torch.isclose(xt, c).all(1).any() for c in init.reshape(-1, 3))   # every centre is a sample
    centres = _lloyd(xt, x2, init, 300, 0.0)
    for c in centres:   # each run: every centre is the mean of the points nearest to it
        lab = torch.from_numpy(assign(xt, c))
        means = torch.stack([xt[lab == j].mean(0) for j in range(4)])
        assert torch.allclose(means, c, atol=1e-4)


def test_emptied_cluster_is_reseeded():
    x = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    centres = torch.tensor([[[0.05], [10.05], [100.0]]])   # the third centre attracts no point
    out = _lloyd(x, (x * x).sum(1), centres, 10, 0.0)[0]
    assert (out < 50).all() and len(set(assign(x, out).tolist())) == 3


def test_seeded_and_deterministic():
    x, y = _sets()["gauss"]
    a, b = kmeans_fit(x, 8, 4, seed=1), kmeans_fit(x, 8, 4, seed=1)
    assert torch.equal(a, b)
    assert kmeans_protocol(x, y, 8, seeds=2, n_init=3) == kmeans_protocol(x, y, 8, seeds=2, n_init=3)


def test_protocol_solvers_agree_and_bad_solver_is_refused():
    x, y = _sets()["blobs"]
    ours = kmeans_protocol(x, y, 6, seeds=2, n_init=5)
    ref = kmeans_protocol(x, y, 6, seeds=2, n_init=5, solver="sklearn")
    assert abs(ours["acc"]["mean"] - ref["acc"]["mean"]) <= 0.01
    with pytest.raises(ValueError, match="k-means solver"):
        kmeans_protocol(x, y, 6, seeds=1, solver="scipy")

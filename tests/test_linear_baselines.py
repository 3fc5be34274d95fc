"""The linear baselines of every report: known answers for MAXVAR GCCA and PCA, and the report's summary."""
import numpy as np
import pytest

from viewsplit.eval.baselines import is_baseline, summary_lines, versus_baselines
from viewsplit.eval.linear import GCCA, PCA


def _planted(n=4000, seed=0, rhos=(0.9, 0.6)):
    """Two views sharing a 2-dim signal with canonical correlations ``rhos``, hidden under private
    directions of much larger variance (which PCA would pick) and a random rotation per view."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    views = []
    for _ in range(2):
        noise = rng.standard_normal((n, 2))
        shared = z * np.sqrt(rhos) + noise * np.sqrt(1 - np.asarray(rhos))   # corr(shared_a, shared_b) = rho
        private = 10 * rng.standard_normal((n, 3))
        x = np.concatenate([shared, private], 1)
        q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
        views.append(x @ q)
    return views, z


def test_gcca_of_two_views_finds_the_canonical_correlations():
    """MAXVAR with two views: eigenvalues 1 + ρ_i, the planted canonical correlations, in order."""
    views, _ = _planted()
    g = GCCA.fit(views, 2, reg=0.0)
    assert g.eigenvalues == pytest.approx([1.9, 1.6], abs=0.03)


def test_gcca_recovers_a_planted_shared_subspace_that_pca_misses():
    views, z = _planted(seed=1)
    train, test = slice(0, 3000), slice(3000, None)
    g = GCCA.fit([v[train] for v in views], 2)
    code = g.transform([v[test] for v in views])

    def r2(feats):   # held-out R² of the shared signal z from a linear read-out of the code
        a = np.c_[feats, np.ones(len(feats))]
        coef = np.linalg.lstsq(a, z[test], rcond=None)[0]
        return 1 - ((a @ coef - z[test]) ** 2).sum() / ((z[test] - z[test].mean(0)) ** 2).sum()

    assert r2(code) > 0.8                     # the consensus of two noisy views of z (ρ 0.9 / 0.6)
    pca = PCA.fit(np.concatenate([v[train] for v in views], 1), 2)
    assert r2(pca.transform(np.concatenate([v[test] for v in views], 1))) < 0.1   # the private variance
    # a sample with one view present is coded from that view alone (the mean over present views)
    one = g.transform([v[test] for v in views], np.array([[True, False]] * 1000))
    assert np.allclose(one, views[0][test] @ g.weights[0] - g.means[0] @ g.weights[0])


def test_gcca_of_three_views_and_wide_views():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((600, 1))
    views = [z @ rng.standard_normal((1, d)) + 0.3 * rng.standard_normal((600, d)) for d in (4, 6, 3000)]
    g = GCCA.fit(views, 1, max_dim=50)      # the 3000-wide view is first reduced to 50 principal components
    assert g.reduce[2] is not None and g.reduce[2].components.shape == (3000, 50)
    code = g.transform(views)[:, 0]
    assert abs(np.corrcoef(code, z[:, 0])[0, 1]) > 0.95
    with pytest.raises(ValueError, match="reg"):
        GCCA.fit(views, 1, reg=1.0)


def test_summary_compares_the_best_learned_row_with_the_best_baseline():
    def km(acc):
        return {"acc": {"mean": acc}, "nmi": {"mean": acc / 2}, "ari": {"mean": acc / 3}}

    metrics = {"clustering": {"C": km(0.8), "V_0": km(0.3), "raw_all": km(0.7), "given_all": km(0.75),
                              "pca_10": km(0.6), "cca_10": km(0.85)},
               "classification": {"C": {"logreg": {"acc": 0.9}}, "raw_all": {"logreg": {"acc": 0.95}}}}
    s = versus_baselines(metrics)
    assert s["kmeans_acc"]["learned"] == "C" and s["kmeans_acc"]["baseline"] == "cca_10"
    assert s["kmeans_acc"]["margin"] == pytest.approx(-0.05)
    assert s["logreg_acc"]["margin"] == pytest.approx(-0.05)
    assert [is_baseline(r) for r in ("C", "C+V_all", "raw_0", "given_all", "pca_8", "gcca_8", "rcca_8")] == [
        False, False, True, True, True, True, True]
    md = "\n".join(summary_lines(s))
    assert "| kmeans_acc | C 0.8000 | cca_10 0.8500 | -0.0500 | no |" in md

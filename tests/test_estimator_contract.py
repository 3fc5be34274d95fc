"""The estimators as scikit-learn users call them: global generators left alone, derived settings that follow
the ones they derive from, numpy scalars and RandomState, pandas / sparse input, and the unusual input a real
user sends (one row, wrong or one-hot ``y``, unlabelled samples, a folder as a model file, swapped views)."""
import random
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from helpers import two_views
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from viewsplit import estimators
from viewsplit.data import DataError
from viewsplit.data import arrays as arrays_mod
from viewsplit.data.arrays import class_codes, warn_if_shifted
from viewsplit.data.handwritten import load_raw
from viewsplit.data.multiview import MultiViewDataset
from viewsplit.data.preprocess import Standardizer
from viewsplit.errors import ConfigError, ViewsplitError
from viewsplit.estimators import DCCA, ESTIMATORS, MRDD, Autoencoder, DMRNet, SoftCCA, SplitViews

TINY = dict(epochs=1, batch_size=32, threads=1)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fitted_ae():
    Xs, _ = two_views(80)
    return Autoencoder(code_dim=4, backbone={"hidden": [16]}, **TINY).fit(Xs)


def draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seeded_draws(seed: int) -> tuple:
    """The draws right after seeding with ``seed``."""
    seed_all(seed)
    return draws()


# ---------------------------------------------------------------------------- issue 32: defects
def test_fit_and_transform_leave_the_global_generators_alone(fitted_ae):
    """fit seeds its own training from random_state; the user's Python / numpy / torch draws go on as seeded."""
    Xs, y = two_views(80)
    expected = seeded_draws(123)
    assert seeded_draws(0) != expected   # the engine seeds with random_state 0
    seed_all(123)
    est = Autoencoder(code_dim=4, backbone={"hidden": [16]}, **TINY).fit(Xs)
    assert draws() == expected
    seed_all(123)
    est.transform(Xs)
    est.score(Xs, y)
    assert draws() == expected
    # DMRNet draws modality drops during training: still nothing leaks out
    seed_all(7)
    DMRNet(z_dim=4, backbone={"hidden": [16]}, **TINY).fit(Xs, y)
    assert draws() == seeded_draws(7)


@pytest.mark.parametrize(("cls", "key"), [(DCCA, "top_k"), (SoftCCA, "align_dim")])
def test_derived_settings_follow_out_dim(cls, key):
    """top_k / align_dim default to "auto": the preset's 9, at most out_dim; an explicit value is kept and checked."""
    assert cls().get_params()[key] == "auto"
    assert getattr(cls().run_config().model, key) == 9                   # the preset's, out_dim 12
    assert getattr(cls(out_dim=4).run_config().model, key) == 4
    assert getattr(cls(out_dim=20).run_config().model, key) == 9
    assert getattr(cls(out_dim=4, **{key: 2}).run_config().model, key) == 2
    assert getattr(cls(**{key: None}).run_config().model, key) is None
    with pytest.raises(ConfigError, match=rf"model\.{key}"):
        cls(out_dim=4, **{key: 9}).run_config()
    # a grid over out_dim (numpy values, as np.arange gives) fits every candidate
    Xs, y = two_views(90)
    X = np.concatenate(Xs, 1)
    pipe = Pipeline([("views", SplitViews([(0, 12), (12, 20)])),
                     ("m", cls(backbone={"hidden": [16]}, **TINY))])
    grid = GridSearchCV(pipe, {"m__out_dim": np.arange(3, 5)}, cv=2, error_score="raise").fit(X, y)
    assert grid.best_params_["m__out_dim"] in (3, 4)
    assert getattr(grid.best_estimator_[-1].config_.model, key) == grid.best_params_["m__out_dim"]


@pytest.mark.parametrize("key, preset", [("stage1_align", 1.0), ("stage1_contrast", 50.0)])
def test_mrdd_view_pairing_terms_follow_stage1_targets(key, preset):
    """MRDD's stage1_align and stage1_contrast apply to hidden stage-1 targets only: "auto" is the preset's
    value with the preset's hidden targets and turns them off for stage1_targets='all'."""
    assert MRDD().get_params()[key] == "auto"
    assert getattr(MRDD().run_config().model, key) == preset
    assert getattr(MRDD(**{key: 2.0}).run_config().model, key) == 2.0
    assert getattr(MRDD(stage1_targets="all").run_config().model, key) == 0.0
    with pytest.raises(ConfigError, match=rf"model\.{key}"):
        MRDD(stage1_targets="all", **{key: 1.0}).run_config()


@pytest.mark.parametrize("method", sorted(ESTIMATORS))
def test_every_estimator_accepts_a_grid_over_each_integer_size(method):
    """No other derived setting: every positive integer model setting can be lowered to 2 or raised alone."""
    cls = ESTIMATORS[method]
    defaults = cls().run_config().model
    for key, value in vars(defaults).items():
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            for new in (2, value + 3):
                assert getattr(cls(**{key: np.int64(new)}).run_config().model, key) == new, key


def test_numpy_scalars_and_random_states_are_accepted():
    est = MRDD(c_dim=np.int64(8), lr=np.float32(1e-3), epochs=np.int32(2), random_state=np.int64(5),
               consistency={"hidden": [np.int64(32)]}, specific={"hidden": np.array([8, 4])},
               stages={"disentangle": {"batch_size": np.int64(16)}})
    cfg = est.run_config()
    assert cfg.model.c_dim == 8 and type(cfg.model.c_dim) is int and cfg.train.seed == 5
    assert cfg.model.consistency.hidden == [32] and cfg.stages["disentangle"].batch_size == 16
    assert cfg.model.specific.hidden == [8, 4]
    assert abs(cfg.stages["consistency"].lr - 1e-3) < 1e-9 and type(cfg.stages["consistency"].lr) is float
    # a RandomState gives one seed drawn from it, as scikit-learn's estimators do
    seed = MRDD(random_state=np.random.RandomState(3)).run_config().train.seed
    assert seed == np.random.RandomState(3).randint(np.iinfo(np.int32).max)
    assert MRDD(random_state=np.random.default_rng(3)).run_config().train.seed >= 0


@pytest.mark.parametrize("seed", [-1, 2**31, 2**64, 1.5, "zero", True])
def test_seeds_outside_the_seed_range_are_one_line_errors(seed):
    with pytest.raises(ConfigError, match="random_state") as err:
        MRDD(random_state=seed).fit(two_views(40)[0])
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)
    assert MRDD(random_state=np.uint32(2**31 - 1)).run_config().train.seed == 2**31 - 1


def test_n_features_in_and_pandas_output_of_a_pipeline(fitted_ae):
    Xs, _ = two_views(80)
    assert fitted_ae.n_features_in_ == 20 == SplitViews([(0, 12), (12, 20)]).fit(np.concatenate(Xs, 1)).n_features_in_
    X = pd.DataFrame(np.concatenate(Xs, 1), columns=[f"f{i}" for i in range(20)], index=np.arange(100, 180))
    pipe = Pipeline([("views", SplitViews([(0, 12), (12, 20)])), ("ae", clone(fitted_ae))]).set_output(
        transform="pandas")
    out = pipe.fit_transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == [f"C_{i}" for i in range(4)] and out.shape == (80, 4)
    assert pipe.n_features_in_ == 20 and list(pipe[0].feature_names_in_) == list(X.columns)
    direct = fitted_ae.set_output(transform="pandas").transform(Xs)
    assert isinstance(direct, pd.DataFrame) and direct.shape == (80, 4)
    with pytest.raises(DataError, match=r"set_params\(representation='Z'\)"):
        fitted_ae.transform(Xs, representation="Z")   # the columns are named after the parameter's representation
    fitted_ae.set_output(transform="default")
    with pytest.raises(ValueError, match="transform must be"):
        SplitViews([(0, 1), (1, 2)]).set_output(transform="xarray")


# ---------------------------------------------------------------------------- issue 33: unusual input
def test_fitting_on_one_row_is_a_clear_error():
    with pytest.raises(DataError, match="at least 2 samples, got 1"):
        Autoencoder(**TINY).fit([x[:1] for x in two_views(40)[0]])


def test_score_checks_y_and_skips_unlabelled_samples(fitted_ae):
    Xs, y = two_views(80)
    with pytest.raises(DataError, match="y: 79 labels for 80 samples"):
        fitted_ae.score(Xs, y[:-1])
    with pytest.raises(DataError, match="y must be 1-D"):
        fitted_ae.score(Xs, np.eye(3)[y])
    with pytest.raises(DataError, match="every sample is unlabelled"):
        fitted_ae.score(Xs, np.full(80, -1))
    with pytest.raises(DataError, match="score needs the labels y"):
        fitted_ae.score(Xs, None)
    # -1 marks an unlabelled sample: scored as if those samples carried no label, not as a class of their own
    part = y.copy()
    part[::2] = -1
    full = fitted_ae.score(Xs, y)
    assert 0 < fitted_ae.score(Xs, part) <= 1
    assert fitted_ae.score(Xs, np.where(part >= 0, part, np.nan)) == fitted_ae.score(Xs, part)
    assert fitted_ae.score(Xs, y.reshape(-1, 1)) == full   # an (N, 1) column is one label per sample
    # a supervised estimator refuses unlabelled training samples and a one-hot y
    with pytest.raises(DataError, match="y: 40 samples are unlabelled"):
        DMRNet(**TINY).fit(Xs, part)
    with pytest.raises(DataError, match="y must be 1-D"):
        DMRNet(**TINY).fit(Xs, np.eye(3)[y])


def test_labels_from_pandas_may_be_strings_or_nullable_integers():
    classes, codes = class_codes(pd.Series(["b", "a", "b"]), 3, "DMRNet")
    assert list(classes) == ["a", "b"] and codes.tolist() == [1, 0, 1]
    classes, codes = class_codes(pd.Series([3, 1, 3], dtype="Int64"), 3, "DMRNet")
    assert list(classes) == [1, 3] and codes.tolist() == [1, 0, 1]
    with pytest.raises(DataError, match="y: 1 samples are unlabelled"):
        class_codes(pd.Series([3, None, 3], dtype="Int64"), 3, "DMRNet")


def test_score_counts_only_labelled_samples_of_a_supervised_estimator():
    Xs, y = two_views(80)
    est = DMRNet(z_dim=4, backbone={"hidden": [16]}, **TINY).fit(Xs, y)
    pred = est.predict(Xs)
    part = y.copy()
    part[:40] = -1
    assert est.score(Xs, part) == pytest.approx(np.mean(pred[40:] == y[40:]))


def test_sparse_views_small_ones_converted_large_ones_refused(fitted_ae, monkeypatch):
    Xs, _ = two_views(80)
    sparse = [sp.csr_matrix(x) for x in Xs]
    assert np.array_equal(fitted_ae.transform(sparse), fitted_ae.transform(Xs))
    Autoencoder(**TINY).fit(sparse)
    monkeypatch.setattr(arrays_mod, "DENSE_LIMIT", 100)
    with pytest.raises(DataError, match=r"view 0: a scipy sparse matrix of shape \(80, 12\).*dense"):
        fitted_ae.transform(sparse)


def test_save_to_a_folder_names_the_path(tmp_path, fitted_ae, monkeypatch):
    with pytest.raises(DataError, match=f"{tmp_path}: is a folder"):
        fitted_ae.save(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        fitted_ae.save(tmp_path / "no" / "such" / "m.pt")
    assert list(tmp_path.iterdir()) == []

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(estimators.ckpt, "atomic_save", full)
    with pytest.raises(DataError, match=f"{tmp_path / 'm.pt'}: cannot write the model file \\(No space left"):
        fitted_ae.save(tmp_path / "m.pt")
    monkeypatch.undo()
    assert fitted_ae.save(tmp_path / "m.pt").is_file()


def test_pandas_views_nullable_dtypes_included(fitted_ae):
    Xs, _ = two_views(80)
    frames = [pd.DataFrame(Xs[0]).astype("Float32"), pd.DataFrame(Xs[1]).astype("Int64")]
    assert np.abs(fitted_ae.transform(frames) - fitted_ae.transform(Xs)).max() < 1e-5
    Autoencoder(**TINY).fit(frames)
    with_na = frames[1].copy()
    with_na.iloc[3, 2] = pd.NA
    with pytest.raises(DataError, match=r"view 1: contains NaN or Inf values \(first bad samples: \[3\]\)"):
        fitted_ae.transform([frames[0], with_na])
    # a sample whose view is marked absent may hold NA, as it may hold NaN
    mask = np.ones((80, 2), dtype=bool)
    mask[3, 1] = False
    fitted_ae.transform([frames[0], with_na], mask=mask)
    text = pd.DataFrame({"a": ["x"] * 80})
    with pytest.raises(DataError, match="view 1: column 'a' has dtype"):
        fitted_ae.transform([frames[0], text])


def test_boolean_views_are_binary_features(fitted_ae):
    Xs, _ = two_views(80)
    flags = [Xs[0] > 0, Xs[1] > 500]
    est = Autoencoder(**TINY).fit(flags)
    assert np.array_equal(est.transform(flags), est.transform([f.astype(np.float32) for f in flags]))


def equal_width_views(n: int, seed: int = 0) -> list[np.ndarray]:
    """Two views of the same width (8) on different scales: one near 0, one near 500."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    return [z @ rng.normal(size=(3, 8)) + 0.1 * rng.normal(size=(n, 8)),
            100 * z @ rng.normal(size=(3, 8)) + 500 + rng.normal(size=(n, 8))]


def test_swapped_views_warn_and_an_honest_split_does_not():
    Xs = equal_width_views(300)
    est = Autoencoder(code_dim=4, backbone={"hidden": [16]}, **TINY).fit([x[:200] for x in Xs])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rows in (slice(200, 300), slice(200, 212), slice(0, 200)):
            est.transform([x[rows] for x in Xs])
        est.transform([x[200:203] for x in Xs[::-1]])   # too few rows to tell: no comparison
    with pytest.warns(UserWarning, match="were the views given in another order") as caught:
        est.transform([x[200:] for x in Xs[::-1]])
    assert sorted(str(w.message).split(";")[1].split(":")[0] for w in caught) == [
        " view 0's data match view 1's statistics", " view 1's data match view 0's statistics"]


@pytest.mark.parametrize("n_test", [10, 30, 400])
def test_handwritten_test_splits_do_not_warn(n_test):
    """The rule on real, heavy-tailed features (6 Handwritten views): a random test split is never flagged, nor
    is one digit's samples (a legitimate shift); a view shifted by 3 of its standard deviations, or spread 10
    times wider, is."""
    views, labels = load_raw()
    order = np.random.default_rng(n_test).permutation(len(views[0]))
    train, test = order[:1600], order[1600:1600 + n_test]
    pre = Standardizer([v.shape[1:] for v in views]).fit(
        MultiViewDataset([torch.from_numpy(v[train]).float() for v in views]))
    digit = np.nonzero(np.asarray(labels) == n_test % 10)[0][:n_test]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rows in (test, digit):
            warn_if_shifted(MultiViewDataset([torch.from_numpy(v[rows]).float() for v in views]), pre)
    moved = [torch.from_numpy(v[test]).float() for v in views]
    moved[2] = moved[2] + 3 * pre.stats(2)[1].float()
    mean = pre.stats(4)[0].float()
    moved[4] = (moved[4] - mean) * 10 + mean
    with pytest.warns(UserWarning, match="view [24]: ") as caught:
        warn_if_shifted(MultiViewDataset(moved), pre)
    assert sorted(str(w.message)[:6] for w in caught) == ["view 2", "view 4"]


def test_errors_are_viewsplit_errors_on_one_line(fitted_ae):
    """Each refusal above is a ViewsplitError (a ValueError) whose message is one line."""
    Xs, y = two_views(80)
    for call in (lambda: fitted_ae.score(Xs, np.eye(3)[y]), lambda: Autoencoder(**TINY).fit([x[:1] for x in Xs]),
                 lambda: MRDD(random_state=-1).run_config()):
        with pytest.raises(ViewsplitError) as err:
            call()
        assert isinstance(err.value, ValueError) and "\n" not in str(err.value)

"""The scikit-learn face: estimators on arrays, the same engine as the CLI, portable and safe model files."""
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from helpers import SMALL_MRDD, two_views
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

import viewsplit
from viewsplit.data import DataError
from viewsplit.engine.checkpoint import CheckpointError
from viewsplit.errors import ConfigError
from viewsplit.estimators import ESTIMATORS, MRDD, Autoencoder, SplitViews


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and lose much when other jobs share the cores."""
    torch.set_num_threads(1)


def cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "viewsplit", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def test_estimator_and_cli_give_the_same_features(tmp_path, fitted_mrdd):
    """One engine: an estimator fit and `viewsplit train` (npz route) + `viewsplit encode` with the same
    settings and seed give the same features; the run folder loads and encodes without its training data."""
    Xs, y = two_views()
    n = len(y)
    data = tmp_path / "train.npz"
    # every sample trains, as in the estimator's fit; 20 extra samples form the (disjoint) test split
    np.savez(data, view0=np.concatenate([Xs[0], Xs[0][:20]]), view1=np.concatenate([Xs[1], Xs[1][:20]]),
             labels=np.concatenate([y, y[:20]]), train_index=np.arange(n), test_index=np.arange(n, n + 20))
    cfg = fitted_mrdd.run_config().to_dict()
    cfg["data"].update(path=str(data))
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    proc = cli("train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    np.savez(tmp_path / "new.npz", view0=Xs[0], view1=Xs[1])
    data.unlink()  # the trained model needs no training data
    proc = cli("encode", str(tmp_path / "run"), "--data", str(tmp_path / "new.npz"), "--out", str(tmp_path / "f.npz"))
    assert proc.returncode == 0, proc.stderr
    feats = np.load(tmp_path / "f.npz")
    reps = fitted_mrdd.encode(Xs)
    assert set(feats.files) == set(reps) == {"C", "V_0", "V_1", "C+V_best", "C+V_all"}
    for k, v in reps.items():
        assert np.abs(feats[k] - v).max() <= 1e-6, k
    # the run folder loads from Python too, with the same features
    again = viewsplit.load(tmp_path / "run")
    assert type(again) is MRDD and np.abs(again.transform(Xs) - reps["C"]).max() <= 1e-6


def test_standardisation_is_fitted_on_train_and_stored(tmp_path, fitted_mrdd):
    Xs, _ = two_views()
    pre = fitted_mrdd.method_.preprocess
    ref = StandardScaler().fit(Xs[1].astype(np.float32))
    mean, std = pre.stats(1)
    assert pre.active.tolist() == [True, True]
    assert np.allclose(mean.numpy(), ref.mean_, rtol=1e-6) and np.allclose(std.numpy(), ref.scale_, rtol=1e-5)
    # new samples are encoded with the training statistics, not their own
    part = [x[:7] for x in Xs]
    assert np.abs(fitted_mrdd.transform(part) - fitted_mrdd.transform(Xs)[:7]).max() <= 1e-6
    # saved with the model; standardize="none" trains on the raw scale
    loaded = viewsplit.load(fitted_mrdd.save(tmp_path / "m.pt"))
    assert torch.equal(loaded.method_.preprocess.stats(1)[1], std)
    raw = MRDD(**{**SMALL_MRDD, "epochs": 1, "standardize": "none"}).fit(Xs)
    assert not raw.method_.preprocess.active.any()


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_method_fits_transforms_saves_and_loads(tmp_path, name):
    Xs, y = two_views(96)
    cls = ESTIMATORS[name]
    est = cls(epochs=1, batch_size=32)
    with pytest.raises(NotFittedError):
        est.transform(Xs)
    Xs_torch = [torch.as_tensor(Xs[0], dtype=torch.float64), torch.as_tensor(Xs[1])]
    assert est.fit(Xs_torch, y) is est
    reps = est.encode(Xs)
    z = est.transform(Xs)
    assert isinstance(z, np.ndarray) and z.shape[0] == 96 and np.array_equal(z, reps[cls.main_representation])
    assert all(isinstance(v, np.ndarray) and v.shape[0] == 96 for v in reps.values())
    assert np.isfinite(est.score(Xs, y)) and est.history_[-1]["kind"] == "epoch"
    loaded = viewsplit.load(est.save(tmp_path / "model.pt"))
    assert type(loaded) is cls and np.array_equal(loaded.transform(Xs), z)
    assert loaded.run_config().to_dict()["model"] == est.config_.to_dict()["model"]
    assert hasattr(est, "predict_views") == (name in ("mrdd", "fae"))
    assert hasattr(est, "predict") == (name in ("dmrnet", "fusion"))


def test_sklearn_contract_checks_that_apply():
    """The scikit-learn checks that need no single-matrix fit; fit/transform checks do not apply to multi-view input."""
    for cls in (MRDD, Autoencoder):
        est = cls()
        name = cls.__name__
        estimator_checks.check_no_attributes_set_in_init(name, est)
        estimator_checks.check_get_params_invariance(name, est)
        estimator_checks.check_set_params(name, est)
        estimator_checks.check_parameters_default_constructible(name, est)
        estimator_checks.check_estimator_cloneable(name, est)
    est = clone(MRDD(c_dim=7, consistency={"hidden": [8]}).set_params(epochs=3))
    assert est.get_params()["c_dim"] == 7 and est.epochs == 3 and est.consistency == {"hidden": [8]}
    cfg = est.run_config()
    # merged over the vector preset's section (configs/handwritten/mrdd.yaml: the conv net for images, not resnet)
    assert cfg.model.consistency.hidden == [8] and cfg.model.consistency.image == "conv"
    assert [s.epochs for s in cfg.stages.values()] == [3, 3]
    assert MRDD(stages={"disentangle": {"epochs": 1}}).run_config().stages["disentangle"].epochs == 1
    with pytest.raises(TypeError, match="unknown parameter"):
        MRDD(c_dimm=3)
    with pytest.raises(ConfigError, match=r"model\.c_dim"):
        MRDD(c_dim=0).run_config()
    with pytest.raises(ConfigError, match="stages: unknown stage"):
        MRDD(stages={"train": {}}).run_config()


def test_training_length_in_steps():
    """``steps=`` sets every stage's length in optimiser steps; per-stage settings come last; both units at once
    is an error.  160 samples in batches of 64 = 2 steps per epoch: 5 steps = 3 epochs, the last cut short."""
    assert [(s.epochs, s.steps) for s in MRDD(steps=50).run_config().stages.values()] == [(None, 50)] * 2
    cfg = MRDD(epochs=3, stages={"disentangle": {"steps": 7}}).run_config()
    assert [(s.epochs, s.steps) for s in cfg.stages.values()] == [(3, None), (None, 7)]
    with pytest.raises(ConfigError, match=r"stages\.consistency: give the stage's length as epochs or as steps, "
                                          "not both"):
        MRDD(epochs=3, steps=5).run_config()
    Xs, _ = two_views()
    est = MRDD(**{**SMALL_MRDD, "epochs": None, "steps": 5}).fit(Xs)
    rows = [(r["stage"], r["epoch"], r["global_step"]) for r in est.history_]
    assert rows == [("consistency", 0, 2), ("consistency", 1, 4), ("consistency", 2, 5),
                    ("disentangle", 0, 7), ("disentangle", 1, 9), ("disentangle", 2, 10)]


def test_pipeline_and_grid_search_over_one_matrix():
    Xs, y = two_views(120)
    X = np.concatenate(Xs, 1)
    pipe = Pipeline([("views", SplitViews([(0, 12), (12, 20)])), ("ae", Autoencoder(epochs=2, batch_size=32)),
                     ("clf", LogisticRegression())])
    grid = GridSearchCV(pipe, {"ae__code_dim": [2, 8]}, cv=2).fit(X, y)
    assert grid.best_params_["ae__code_dim"] in (2, 8) and grid.score(X, y) > 0.5
    # without a classifier, the estimator's own score (k-means ACC against y) ranks the candidates
    grid = GridSearchCV(Pipeline([("views", SplitViews([(0, 12), (12, 20)])), ("ae", Autoencoder(epochs=1))]),
                        {"ae__code_dim": [2, 4]}, cv=2).fit(X, y)
    assert 0 < grid.best_score_ <= 1
    views = SplitViews([(0, 4), (4, 20)], shapes=[None, (1, 4, 4)]).fit(X).transform(X)
    assert [v.shape for v in views] == [(120, 4), (120, 1, 4, 4)]
    with pytest.raises(DataError, match=r"columns\[1\]"):
        SplitViews([(0, 12), (12, 99)]).fit(X)


def test_image_views_masks_and_predicted_views():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(64, 1, 8, 8), dtype=np.uint8)
    vec = img.reshape(64, -1)[:, ::4].astype(np.float32) + rng.normal(size=(64, 16)).astype(np.float32)
    fae = ESTIMATORS["fae"](epochs=1, batch_size=32, backbone={"channels": [8, 16]}).fit([img, vec])
    assert fae.method_.preprocess.active.tolist() == [False, True]  # images are not standardised by default
    mask = np.ones((64, 2), dtype=bool)
    mask[:10, 1] = False
    vec_nan = vec.copy()
    vec_nan[:10] = np.nan  # an absent view's values are never used
    assert np.array_equal(fae.transform([img, vec_nan], mask=mask), fae.transform([img, vec], mask=mask))
    assert np.isnan(vec_nan[:10]).all()  # the caller's array is left alone
    preds = fae.predict_views([img, vec_nan], mask=mask)
    assert [p.shape for p in preds] == [(64, 1, 8, 8), (64, 16)] and np.isfinite(preds[1]).all()
    # in the data's units: close to the view's scale, not the standardised one
    assert abs(preds[1].mean() - vec.mean()) < 3 * vec.std()


def test_bad_input_names_the_view(fitted_mrdd):
    Xs, _ = two_views()
    with pytest.raises(DataError, match="list of per-view arrays"):
        fitted_mrdd.transform(np.concatenate(Xs, 1))
    with pytest.raises(DataError, match="Xs: got 1 views, the model was fitted on 2"):
        fitted_mrdd.transform(Xs[:1])
    with pytest.raises(DataError, match=r"view 1: samples of shape \(7,\)"):
        fitted_mrdd.transform([Xs[0], Xs[1][:, :7]])
    with pytest.raises(DataError, match="view 1"):
        fitted_mrdd.transform([Xs[0], np.array(["a"] * len(Xs[0]))[:, None]])
    with pytest.raises(DataError, match="view 1"):
        fitted_mrdd.transform([Xs[0], Xs[1][:5]])
    with pytest.raises(DataError, match="representation 'Z'"):
        fitted_mrdd.transform(Xs, representation="Z")
    with pytest.raises(DataError, match="supervised"):
        ESTIMATORS["fusion"](epochs=1).fit(Xs)


class _Payload:
    """Unpickling this runs a shell command that creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_model_files_never_unpickle_code(tmp_path, fitted_mrdd):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    state = torch.load(fitted_mrdd.save(tmp_path / "ok.pt"), weights_only=True)
    torch.save({**state, "config": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"evil\.pt: not a readable viewsplit"):
        viewsplit.load(evil)
    with open(tmp_path / "plain.pkl", "wb") as fh:
        pickle.dump(_Payload(marker), fh)
    with pytest.raises(CheckpointError):
        viewsplit.load(tmp_path / "plain.pkl")
    assert not marker.exists()
    # a run folder's checkpoints are read the same way
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    shutil.copy(evil, run / "final.pt")
    with pytest.raises(CheckpointError):
        viewsplit.load(tmp_path / "run")
    assert not marker.exists()


def test_corrupt_and_old_model_files_get_a_clear_error(tmp_path, fitted_mrdd):
    good = fitted_mrdd.save(tmp_path / "m.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable viewsplit checkpoint or model file"):
        viewsplit.load(tmp_path / "cut.pt")
    state = torch.load(good, weights_only=True)
    torch.save({**state, "format": 1}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match=r"old\.pt: file format 1 .* reads format 2"):
        viewsplit.load(tmp_path / "old.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a viewsplit checkpoint"):
        viewsplit.load(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match=r"nothing\.pt: no such model file"):
        viewsplit.load(tmp_path / "nothing.pt")
    proc = cli("encode", str(tmp_path / "cut.pt"), "--data", str(tmp_path / "x.npz"), "--out", str(tmp_path / "f.npz"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "cut.pt" in proc.stderr


def test_fit_leaves_torch_global_settings_alone():
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    Autoencoder(epochs=1, threads=1).fit(two_views(64)[0])
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)


def test_import_is_light():
    """`import viewsplit` and `viewsplit --help` load no torch; `from viewsplit import MRDD` loads the
    estimators on first use."""
    code = ("import sys, viewsplit, viewsplit.cli as c; c.build_parser().format_help(); "
            "print('torch' in sys.modules, viewsplit.MRDD.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=dict(os.environ, PYTHONPATH=str(REPO))).stdout.split()
    assert out == ["False", "viewsplit.estimators"]


def test_standardizer_per_channel_on_present_samples_only():
    from viewsplit.data.multiview import MultiViewDataset
    from viewsplit.data.preprocess import Standardizer

    rng = np.random.default_rng(2)
    img = torch.from_numpy(rng.integers(0, 256, size=(50, 3, 4, 4), dtype=np.uint8))
    vec = torch.from_numpy(rng.normal(5, 3, size=(50, 6)).astype(np.float32))
    vec[0, 2] = 1e6  # a sample whose view is absent must not count
    mask = torch.ones(50, 2, dtype=torch.bool)
    mask[0, 1] = False
    ds = MultiViewDataset([img, vec], mask=mask)
    pre = Standardizer(ds.view_shapes).fit(ds, "all", batch_size=16)
    pix = img.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    assert np.allclose(pre.stats(0)[0].flatten().numpy(), pix.mean(1).numpy())
    assert np.allclose(pre.stats(0)[1].flatten().numpy(), pix.std(1, unbiased=False).numpy())
    assert np.allclose(pre.stats(1)[0].numpy(), vec[1:].double().mean(0).numpy(), rtol=1e-6)
    out = pre.transform(ds)
    assert out.views[0].dtype == torch.float32 and abs(float(out.views[0].mean())) < 1e-5
    assert torch.allclose(pre.invert(1, out.views[1]), vec, rtol=1e-5)
    assert Standardizer(ds.view_shapes).fit(ds, "vectors").active.tolist() == [False, True]
    with pytest.raises(ConfigError, match=r"data\.standardize"):
        Standardizer(ds.view_shapes).fit(ds, "some")


def test_module_apply_reaches_a_fitted_standardizer():
    """nn.Module.apply(fn) calls fn on every submodule; the standardiser's data-set method (transform) once
    shadowed apply, so applying fn to a method with fitted standardisation failed instead."""
    from viewsplit.data.multiview import MultiViewDataset
    from viewsplit.methods import build_method, get_method
    from viewsplit.methods.base import DataSpec

    ds = MultiViewDataset([torch.randn(8, 3), torch.randn(8, 2)], torch.arange(8) % 2)
    method = build_method("autoencoder", get_method("autoencoder").Config(), DataSpec.of(ds))
    method.preprocess.fit(ds, "all")
    seen: list[torch.nn.Module] = []
    assert method.apply(seen.append) is method
    assert method.preprocess in seen and seen[-1] is method and len(seen) == len(list(method.modules()))

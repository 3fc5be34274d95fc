"""Baselines in every report: k-means and probes on the input views (standardised and as given), PCA and
linear CCA, and the summary that compares the best learned representation with the best of them."""
import json
from pathlib import Path

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
    with torch.no_grad():
        c_dim = run.method.eval().encode([v[:2] for v in run.splits.test.views])["C"].shape[1]
    rows = {"raw_0", "raw_1", "raw_all", "given_0", "given_1", "given_all", f"pca_{c_dim}", f"cca_{c_dim}",
            f"rcca_{c_dim}"}
    for table in (metrics["clustering"], metrics["classification"]):
        assert {"C", *rows} <= set(table)
    # the secondary (reference-protocol) clustering rows are the model's only
    assert "C" in metrics["secondary"]["train"]["clustering"]
    assert not any(r.startswith("raw_") for r in metrics["secondary"]["train"]["clustering"])
    # the raw row is the protocol on the views as the model sees them: standardised with the train split's statistics
    train, test = run.splits.train, run.splits.test
    assert np.allclose(train.views[1].mean(0).numpy(), 0, atol=1e-4)
    assert not np.allclose(test.views[1].mean(0).numpy(), 0, atol=1e-4)  # train statistics, not the test split's own
    feats = np.concatenate([v.numpy() for v in test.views], 1)
    want = kmeans_protocol(feats, test.labels.numpy(), 10, seeds=2)
    assert metrics["clustering"]["raw_all"]["acc"]["per_seed"] == pytest.approx(want["acc"]["per_seed"])
    # the rows as given: the user's own pixel values (the file's rows, 0..16), not the model's z-scores
    given = run.method.preprocess.invert(0, test.views[0]).numpy()
    assert np.abs(given - np.round(given)).max() < 1e-3 and given.max() == pytest.approx(16, abs=1e-3)
    assert {tuple(r) for r in np.round(given)} <= {tuple(r) for r in np.load(path)["view0"][:600]}
    want = kmeans_protocol(given, test.labels.numpy(), 10, seeds=2)
    assert metrics["clustering"]["given_0"]["acc"]["per_seed"] == pytest.approx(want["acc"]["per_seed"])
    # the summary: the best learned row against the best baseline, per metric
    summary = metrics["summary"]["kmeans_acc"]
    best = max((r for r in metrics["clustering"] if r in ("C", "V_0", "V_1", "C+V_best", "C+V_all")),
               key=lambda r: metrics["clustering"][r]["acc"]["mean"])
    assert summary["learned"] == best and summary["baseline"] in rows
    assert summary["margin"] == pytest.approx(summary["learned_value"] - max(
        metrics["clustering"][r]["acc"]["mean"] for r in rows))
    md = (tmp_path / "run" / "metrics.md").read_text()
    assert "| raw_all |" in md and "| raw_0 |" in md and f"| cca_{c_dim} |" in md
    assert "## Against the baselines" in md and "| kmeans_acc |" in md and "| logreg_acc |" in md
    assert "raw_all" in json.loads((tmp_path / "run" / "metrics.json").read_text())["classification"]


def test_max_samples_caps_each_split_before_extraction_raw_baselines_included(digits_npz):
    """eval.max_samples: each split larger than the cap is replaced by the documented seeded subsample before
    extraction; the report equals the uncapped protocol on that subsample and says what was evaluated."""
    import dataclasses

    from viewsplit.config import EvalConfig
    from viewsplit.data import DataConfig, load_dataset
    from viewsplit.data.multiview import DataSplits
    from viewsplit.eval.baselines import RawViews, add_raw_baselines
    from viewsplit.eval.evaluate import cap_splits, evaluate, markdown

    splits = load_dataset(DataConfig(name="npz", path=str(digits_npz)))
    n = {s: len(getattr(splits, s)) for s in ("train", "test")}
    assert min(n.values()) > 100
    capped, record = cap_splits(splits, 100)
    for s in ("train", "test"):
        idx = np.sort(np.random.default_rng(0).choice(n[s], size=100, replace=False))
        full, part = getattr(splits, s), getattr(capped, s)
        assert torch.equal(part.views[1], full.views[1][idx]) and torch.equal(part.labels, full.labels[idx])
        assert record[s] == (f"a seeded subsample of 100 of {n[s]} samples (numpy default_rng(0), without "
                             "replacement, in data-set order)")
    for cap in (0, 10_000):   # no cap, or a cap above the sizes: the same data sets, untouched
        same, rec = cap_splits(splits, cap)
        assert same.train is splits.train and same.test is splits.test and rec["test"] == f"all {n['test']} samples"

    cfg = EvalConfig(kmeans_seeds=2, probes=["logreg", "knn"], secondary_splits=["train"], max_samples=100,
                     redundancy=False, figures=False)
    got = evaluate(RawViews(), splits, cfg)
    ref = evaluate(RawViews(), DataSplits(capped.train, capped.test, splits.cluster_on, splits.info),
                   dataclasses.replace(cfg, max_samples=0))
    for key in ("clustering", "classification", "secondary"):
        assert got[key] == ref[key], key
    assert got["protocol"]["samples"] == {"max_samples": 100, **record}
    assert ref["protocol"]["samples"] == {"max_samples": 0, "train": "all 100 samples", "test": "all 100 samples"}
    assert got["protocol"]["kmeans"]["fit"] == {"test": "fitted on all 100 points", "train": "fitted on all 100 points"}
    md = markdown(got)
    assert f"Evaluated (eval.max_samples = 100): train split: a seeded subsample of 100 of {n['train']} samples" in md
    assert "k-means: test: fitted on all 100 points; train: fitted on all 100 points." in md
    # the raw-baseline rows of a report go through the same cap
    raw = add_raw_baselines({"secondary": {"train": {"clustering": {}}}}, splits, cfg)
    assert raw["clustering"]["raw_all"] == ref["clustering"]["raw_all"]
    assert raw["classification"]["raw_0"] == ref["classification"]["raw_0"]


def test_raw_rows_are_cached_by_everything_they_depend_on(digits_npz, monkeypatch):
    """A second evaluation of the same data and settings reads the rows; other data, settings or labels miss."""
    import dataclasses

    import viewsplit.eval.baselines as baselines
    from viewsplit.config import EvalConfig
    from viewsplit.data import DataConfig, load_dataset
    from viewsplit.data.multiview import DataSplits
    from viewsplit.data.registry import cache_dir

    splits = load_dataset(DataConfig(name="npz", path=str(digits_npz)))
    cfg = EvalConfig(kmeans_seeds=1, kmeans_n_init=2, probes=["logreg"], max_samples=300, redundancy=False,
                     figures=False)
    first = baselines.add_raw_baselines({}, splits, cfg)
    assert first["protocol"]["raw_baselines"] == "computed"
    calls = []
    monkeypatch.setattr(baselines, "evaluate", lambda *a, **k: calls.append(1) or pytest.fail("not cached"))
    again = baselines.add_raw_baselines({}, splits, cfg)
    assert again["protocol"]["raw_baselines"].startswith("read from the cache")
    assert again["clustering"] == first["clustering"] and again["classification"] == first["classification"]
    key = baselines.cache_key(splits, cfg)
    other_labels = DataSplits(splits.train, dataclasses.replace(splits.test, labels=splits.test.labels.flip(0)),
                              splits.cluster_on, splits.info)
    changed = [baselines.cache_key(splits, dataclasses.replace(cfg, kmeans_seeds=2)),
               baselines.cache_key(splits, dataclasses.replace(cfg, probe_solver="sklearn")),
               baselines.cache_key(splits, dataclasses.replace(cfg, max_samples=200)),
               baselines.cache_key(other_labels, cfg)]
    assert key not in changed and len(set(changed)) == len(changed)
    # a corrupt cache file is recomputed, and eval.raw_baseline_cache=false neither reads nor writes
    cached = Path(again["protocol"]["raw_baselines"].split("(", 1)[1].rstrip(")"))
    assert cached.parent == cache_dir() / "raw-baselines"
    cached.write_text("{not json")
    monkeypatch.setattr(baselines, "evaluate", evaluate_counting := _counting(calls))
    assert baselines.add_raw_baselines({}, splits, cfg)["protocol"]["raw_baselines"] == "computed"
    assert baselines.add_raw_baselines({}, splits, dataclasses.replace(cfg, raw_baseline_cache=False))[
        "protocol"]["raw_baselines"] == "computed"
    assert len(calls) == 2 and evaluate_counting is baselines.evaluate


def _counting(calls):
    from viewsplit.eval.evaluate import evaluate

    def run(*args, **kwargs):
        calls.append(1)
        return evaluate(*args, **kwargs)
    return run

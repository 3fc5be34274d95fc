"""Partly and wholly unlabelled data (label −1): training uses every sample, the label-needing parts of the
evaluation (k-means scores, probes, raw-view baselines) use the labelled samples only, and the report says how many."""
import json

import numpy as np
import pytest

from viewsplit.cli import main
from viewsplit.data.multiview import num_batches
from viewsplit.engine.run import load_run
from viewsplit.eval.baselines import RawViews
from viewsplit.eval.evaluate import extract
from viewsplit.eval.metrics import kmeans_protocol
from viewsplit.eval.probes import run_probe

SMALL = ["model.backbone.hidden=[16]", "stages.train.epochs=2", "stages.train.batch_size=16", "train.threads=1",
         "train.progress=never", "eval.kmeans_seeds=2", "eval.kmeans_n_init=2", "eval.probes=[logreg,knn]",
         "eval.knn_k=3", "eval.figures=false"]


def _npz(path, labels):
    """150 samples of 3 classes in 2 views (class means plus noise, overlapping); ``labels`` None leaves them out."""
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    arrays = {"view0": rng.normal(size=(150, 6)) + 0.5 * np.eye(3)[y] @ rng.normal(size=(3, 6)),
              "view1": rng.normal(size=(150, 4)) + 0.5 * np.eye(3)[y] @ rng.normal(size=(3, 4))}
    if labels is not None:
        arrays["labels"] = labels(y, rng)
    np.savez(path, **arrays)
    return path


def _hide(y, rng):
    """Labels with 40 % of them hidden (−1)."""
    return np.where(rng.random(len(y)) < 0.4, -1, y)


def test_partly_labelled_data_trains_on_all_and_evaluates_the_labelled(tmp_path, capsys):
    path = _npz(tmp_path / "part.npz", _hide)
    out = tmp_path / "run"
    assert main(["run", "handwritten/autoencoder", "data.name=npz", f"data.path={path}", *SMALL,
                 "eval.raw_baselines=true", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    run = load_run(out)
    train, test = run.splits.train, run.splits.test
    on_tr, on_te = train.labels.numpy() >= 0, test.labels.numpy() >= 0
    assert 0 < on_tr.sum() < len(train) and 0 < on_te.sum() < len(test)
    assert metrics["labels"]["train"] == {"labelled": int(on_tr.sum()), "samples": len(train)}
    assert metrics["labels"]["test"] == {"labelled": int(on_te.sum()), "samples": len(test)}
    report = (out / "metrics.md").read_text()
    line = f"**Labels**: {on_tr.sum()} of {len(train)} train and {on_te.sum()} of {len(test)} test samples are labelled"
    assert line in report and line in capsys.readouterr().out
    # training saw every sample: 2 epochs of all N_train samples in batches of 16
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = 2 * num_batches(len(train), 16, run.cfg.stages["train"].drop_last)
    assert [r for r in log if r["kind"] == "epoch"][-1]["global_step"] == steps > 2 * on_tr.sum() // 16
    # known answer: the scores are the protocol run on the labelled samples' features alone
    y_tr, y_te = train.labels.numpy()[on_tr], test.labels.numpy()[on_te]
    for model, rep in ((run.method, "C"), (RawViews(), "raw_all")):
        f_tr, f_te = extract(model, train)[rep][on_tr], extract(model, test)[rep][on_te]
        clus = kmeans_protocol(f_te, y_te, 3, seeds=2, n_init=2)
        assert metrics["clustering"][rep]["acc"]["per_seed"] == clus["acc"]["per_seed"]
        assert metrics["clustering"][rep]["nmi"]["mean"] == pytest.approx(clus["nmi"]["mean"], abs=1e-12)
        for probe in ("logreg", "knn"):
            got = run_probe(probe, f_tr, y_tr, f_te, y_te, 3, run.cfg.eval.probe_solver)
            assert metrics["classification"][rep][probe]["acc"] == pytest.approx(got["acc"], abs=1e-12)
    # re-evaluation and the missing-view protocol say the same
    assert main(["eval", str(out), "eval.raw_baselines=false", "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["labels"] == metrics["labels"] and again["clustering"]["C"] == metrics["clustering"]["C"]
    assert main(["eval", str(out), "--missing", "--out", str(tmp_path / "missing")]) == 0
    missing = json.loads((tmp_path / "missing" / "missing.json").read_text())
    assert missing["labels"]["test"] == metrics["labels"]["test"]
    full = next(r for r in missing["rows"] if r["views"] == [0, 1] and r["representation"] == "C")
    assert full["clustering"]["acc"]["per_seed"] == metrics["clustering"]["C"]["acc"]["per_seed"]


@pytest.mark.parametrize("labels", [None, lambda y, rng: np.full(len(y), -1)], ids=["no labels", "every label -1"])
def test_unlabelled_data_trains_and_reports_what_needs_no_labels(tmp_path, capsys, labels):
    path = _npz(tmp_path / "none.npz", labels)
    out = tmp_path / "run"
    assert main(["run", "handwritten/fae", "data.name=npz", f"data.path={path}", *SMALL, "model.shared_dim=3",
                 "model.private_dim=2", "eval.raw_baselines=true", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["clustering"] == {} and metrics["classification"] == {}
    assert metrics["labels"]["train"]["labelled"] == metrics["labels"]["test"]["labelled"] == 0
    assert set(metrics["prediction"]) == {"view_0", "view_1"}          # missing-view prediction needs no labels
    assert "no sample is labelled" in (out / "metrics.md").read_text()
    capsys.readouterr()
    assert main(["eval", str(out), "--missing"]) == 2
    err = capsys.readouterr().err
    assert "no sample is labelled" in err and "Traceback" not in err

"""Every bad input ends in one clear line (exit code 2, no traceback) that names the culprit, before training."""
import argparse
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fails

import viewsplit
from viewsplit.cli import build_parser, main
from viewsplit.config import load_config
from viewsplit.data import MultiViewDataset
from viewsplit.engine import checkpoint as ckpt
from viewsplit.engine.run import load_run, prepare, train
from viewsplit.engine.trainer import Trainer, load_optimizer
from viewsplit.errors import ConfigError, DataError, TrainingError
from viewsplit.methods import available_methods

CONFIG = "handwritten/autoencoder"
TINY = ["stages.train.epochs=1", "stages.train.batch_size=4", "train.progress=never", "eval.kmeans_seeds=1",
        "eval.probes=[logreg]", "eval.figures=false"]


def npz_file(folder: Path, name: str = "mine.npz", n: int = 12, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = dict(view0=rng.normal(size=(n, 3)), view1=rng.normal(size=(n, 2)), labels=np.arange(n) % 2)
    path = folder / name
    np.savez(path, **{**base, **arrays})
    return path


def _truncated(folder: Path) -> Path:
    good = npz_file(folder, "good.npz").read_bytes()
    (folder / "mine.npz").write_bytes(good[: len(good) // 2])
    return folder / "mine.npz"


def _header_short(folder: Path) -> list[str]:
    (folder / "a.csv").write_text("x,y\n" + "".join(f"{i},{i % 3},{i % 5}\n" for i in range(10)))
    (folder / "b.csv").write_text("".join(f"{i % 2},{i}\n" for i in range(10)))
    return ["data.name=csv", f"data.views=[{folder / 'a.csv'},{folder / 'b.csv'}]"]


DATA_FILES = {
    "object array": (lambda f: npz_file(f, view1=np.array([[1, "a"]] * 12, dtype=object)), ["mine.npz", "'view1'"]),
    "truncated npz": (_truncated, ["mine.npz", "not a readable .npz"]),
    "garbage bytes": (lambda f: (f / "mine.npz").write_bytes(b"\x00garbage" * 50) and f / "mine.npz",
                      ["mine.npz", "not a readable .npz"]),
    "a .npy file": (lambda f: np.save(f / "mine.npy", np.zeros((4, 2))) or f / "mine.npy", ["mine.npy", "not an .npz"]),
    "a folder": (lambda f: f, [": not a readable .npz", "data.path"]),
    "1 sample": (lambda f: npz_file(f, n=1), ["mine", "1 samples are too few"]),
    "3 samples": (lambda f: npz_file(f, n=3, labels=np.arange(3)), ["mine", "3 samples are too few"]),
    "huge values": (lambda f: npz_file(f, view1=np.full((12, 2), 1e30)), ["mine.npz", "'view1'", "1e+30"]),
    "overlapping indices": (lambda f: npz_file(f, train_index=np.arange(8), test_index=np.arange(6, 12)),
                            ["mine", "share 2 samples", "leak"]),
    "repeated indices": (lambda f: npz_file(f, train_index=np.array([0, 0, 1]), test_index=np.arange(6, 12)),
                         ["train_index repeats"]),
    "float indices": (lambda f: npz_file(f, train_index=np.arange(6) + 0.5, test_index=np.arange(6, 12)),
                      ["train_index must be", "float64"]),
    "labels of huge floats": (lambda f: npz_file(f, labels=np.full(12, 1e300)), ["'labels'", "integers"]),
}


@pytest.mark.parametrize("case", DATA_FILES)
def test_bad_data_files(tmp_path, capsys, case):
    make, culprits = DATA_FILES[case]
    path = make(tmp_path)
    fails(capsys, ["run", CONFIG, "data.name=npz", f"data.path={path}", *TINY, "--out", tmp_path / "run"], *culprits)
    assert not (tmp_path / "run" / "checkpoints").exists()    # nothing trained


def test_csv_header_with_fewer_names_than_columns(tmp_path, capsys):
    fails(capsys, ["run", CONFIG, *_header_short(tmp_path), *TINY, "--out", tmp_path / "run"],
          "a.csv", "header has 2 names but the rows have 3 columns")


# ---------------------------------------------------------------------------- tiny runs (conftest: config, finished)
def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------------------- labels
# partly or wholly unlabelled data is evaluated on its labelled samples (tests/test_partial_labels.py); these are
# the labellings whose labelled samples cannot be clustered or probed
SPLIT = dict(train_index=np.arange(10), test_index=np.array([10, 11]))
LABELS = {
    "every label in one class": (dict(labels=np.zeros(12, dtype=int)), "every label of the train split is class 0"),
    "no labelled test sample": (dict(labels=np.array([0, 1] * 5 + [-1, -1]), **SPLIT),
                                "none of the test samples is labelled, so the probes cannot be scored"),
    "no labelled train sample": (dict(labels=np.array([-1] * 10 + [0, 1]), **SPLIT),
                                 "none of the train samples is labelled, so the probes cannot be fitted"),
    "one labelled class in train": (dict(labels=np.array([0] * 5 + [-1] * 5 + [0, 1]), **SPLIT),
                                    "every label of the train split is class 0"),
}


@pytest.mark.parametrize("case", LABELS)
def test_unusable_labels_stop_run_before_training(tmp_path, capsys, case):
    arrays, culprit = LABELS[case]
    path = npz_file(tmp_path, **arrays)
    fails(capsys, ["run", CONFIG, "data.name=npz", f"data.path={path}", *TINY, "--out", tmp_path / "run"],
          "'mine'", culprit)
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---------------------------------------------------------------------------- checkpoints
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CHECKPOINTS = {
    "eval of a truncated final.pt": (lambda r: _truncate(r / "checkpoints/final.pt"), ["eval"], "final.pt"),
    "eval of random bytes": (lambda r: (r / "checkpoints/final.pt").write_bytes(os.urandom(500)), ["eval"], "final.pt"),
    "eval of a foreign pickle": (lambda r: torch.save([1, 2], r / "checkpoints/final.pt"), ["eval"],
                                 "final.pt: not a viewsplit checkpoint"),
    "resume from a truncated last.pt": (lambda r: _truncate(r / "checkpoints/last.pt"), ["train", "RAW", "--resume"],
                                        "last.pt: not a readable viewsplit checkpoint"),
}


@pytest.mark.parametrize("case", CHECKPOINTS)
def test_broken_checkpoints_are_named(finished, config, tmp_path, capsys, case):
    damage, command, culprit = CHECKPOINTS[case]
    run_dir = copy_run(finished, tmp_path / "run")
    damage(run_dir)
    argv = ["eval", run_dir] if command == ["eval"] else ["train", config, "--out", run_dir, "--resume"]
    fails(capsys, argv, culprit)


def test_eval_of_an_unknown_checkpoint_lists_the_existing_ones(finished, capsys):
    line = fails(capsys, ["eval", finished, "--checkpoint", "nope"], "nope.pt: no such checkpoint", "final, last")
    assert "not finished" not in line


# ---------------------------------------------------------------------------- paths and options
def test_paths_and_options(tmp_path, capsys, config, finished):
    fails(capsys, ["train", tmp_path], str(tmp_path), "is a folder")
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="overrides: expected a list of key=value strings, got 'a=b'"):
        load_config(config, "a=b")
    fails(capsys, ["bench", "--seeds", "0", "--out", tmp_path / "b"], "--seeds", "got 0")
    fails(capsys, ["eval", config], str(config), "not a readable viewsplit checkpoint or model file")
    fails(capsys, ["train", config, "--resume"], "--resume", "--out")
    (tmp_path / "file").write_text("x")
    fails(capsys, ["train", config, "--out", tmp_path / "file"], "file: is a file")
    fails(capsys, ["train", config, "--out", finished, "--resume", "--allow-changed", "model.shared_dim"],
          "--allow-changed model.shared_dim", "stages.* and train.*")
    # predict --out into a folder that does not exist yet: created
    out = tmp_path / "new" / "deeper" / "pred.npz"
    assert main(["predict", str(finished), "--views", "0", "--out", str(out)]) == 0
    assert set(np.load(out).files) == {"index", "pred_view1"}


# ---------------------------------------------------------------------------- Python API
def _views(n=5):
    return [torch.randn(n, 3), torch.randn(n, 2)]


@pytest.mark.parametrize("call, match", [
    (lambda m: MultiViewDataset([[1.0, 2.0], [3.0, 4.0]]), r"view 0 \('view0'\): expected a torch.Tensor, got list"),
    (lambda m: MultiViewDataset([np.zeros((3, 2)), np.zeros((3, 2))]), r"view 0 .*expected a torch.Tensor"),
    (lambda m: MultiViewDataset(_views(), labels=[0, 1, 0, 1, 0]), r"labels must be a 1-d int64 tensor, got list"),
    (lambda m: MultiViewDataset(_views(), view_names="ab"), r"view_names must be a list of strings"),
    (lambda m: m.encode([torch.randn(4, 6)]), r"fae: expected a list of 2 views \['view0', 'view1'\], got 1"),
    (lambda m: m.encode([torch.randn(4, 6), torch.randn(4, 5)]), r"fae: view 1 \('view1'\): shape \(4, 5\), the model "
                                                                  r"expects \(N, 6\)"),
    (lambda m: m.encode([torch.randn(4, 6), torch.randn(3, 6)]), r"view 1 .*with N = 4"),
    (lambda m: m.encode([torch.randn(4, 6), torch.randn(4, 6).long()]), r"view 1 .*expected a float tensor"),
    (lambda m: m.encode([torch.randn(4, 6)] * 2, torch.ones(4, 3, dtype=torch.bool)), r"mask must be a \(4, 2\)"),
])
def test_python_api_errors_name_the_culprit(finished, call, match):
    method = load_run(finished).method
    with pytest.raises(DataError, match=match):
        call(method)


# ---------------------------------------------------------------------------- misleading messages, non-finite losses
def test_non_finite_loss_names_the_term_and_the_input_view(tmp_path, config):
    cfg = load_config(config, ["train.checkpoint_every_steps=0"])
    run = prepare(cfg, tmp_path)
    data = run.splits.train
    data.views[1][7] = 3e30          # corrupted after validation: the trainer must blame the data, not the lr
    with pytest.raises(TrainingError, match=r"non-finite loss term '(?!objective)\w+'.*not the learning rate: input "
                                            r"view 1 \('view1'\) of this batch: holds values up to 3e\+30"):
        Trainer(cfg, run.method, data, tmp_path / "run").fit()


def test_non_finite_loss_offers_resuming_with_a_changed_lr(tmp_path, config):
    with pytest.raises(TrainingError) as err:
        train(load_config(config, ["stages.train.lr=1e30"]), tmp_path / "run")
    assert "non-finite loss term" in str(err.value) and "'objective'" not in str(err.value)
    assert "--resume stages.train.lr=… --allow-changed stages.train.lr" in str(err.value)
    with pytest.raises(ConfigError, match=r"differs from the saved run in stages.train.lr.*--allow-changed "
                                          r"stages.train.lr"):
        train(load_config(config, ["stages.train.lr=1e-3"]), tmp_path / "run", resume=True)


def test_resumed_optimiser_takes_the_allowed_settings_and_keeps_its_moments():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.0)
    w.sum().backward()
    opt.step()
    saved = opt.state_dict()
    again = torch.optim.AdamW([w], lr=0.01, weight_decay=0.5)
    load_optimizer(again, saved)
    assert again.param_groups[0]["weight_decay"] == 0.5 and again.param_groups[0]["lr"] == 0.01
    assert torch.equal(again.state[w]["exp_avg"], opt.state[w]["exp_avg"])


# ---------------------------------------------------------------------------- fail fast
FAIL_FAST = {
    "best_view beyond the views": (["eval.best_view=5"], "eval.best_view: 5 is not a view index"),
    "unknown representation": (["eval.representations=[Z]"], "eval.representations: ['Z'] not available"),
    "knn_k above the train size": (["eval.probes=[knn]", "eval.knn_k=100"], "eval.knn_k: 100 neighbours"),
}


@pytest.mark.parametrize("case", FAIL_FAST)
def test_eval_settings_fail_before_training(config, tmp_path, capsys, case):
    overrides, culprit = FAIL_FAST[case]
    fails(capsys, ["run", config, *overrides, "--out", tmp_path / "run"], culprit)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_eval_settings_fail_before_extracting(finished, capsys):
    fails(capsys, ["eval", finished, "eval.best_view=2"], "eval.best_view: 2")


def test_bench_checks_every_method_before_the_first_trains(tmp_path, capsys):
    # code_dim is an autoencoder key: fine for it, an error for fae, which would train second
    fails(capsys, ["bench", "--methods", "autoencoder,fae", "--seeds", "1", "--out", tmp_path, "model.code_dim=4"],
          "bench handwritten/fae", "model.code_dim: unknown key")
    fails(capsys, ["bench", "--methods", "autoencoder,fae", "--seeds", "1", "--out", tmp_path,
                   "eval.representations=[C]", "fae:eval.representations=[Z]"], "bench handwritten/fae", "['Z']")
    fails(capsys, ["bench", "--methods", "autoencoder", "--out", tmp_path, "mib:model.beta=1"],
          "mib:model.beta=1", "not one of the benchmarked methods")
    assert not any(tmp_path.rglob("*.pt"))


def test_bench_method_prefix_applies_to_one_method():
    from viewsplit.bench import method_overrides

    over = ["eval.kmeans_seeds=1", "fae:model.shared_dim=3", "autoencoder:model.code_dim=4"]
    assert method_overrides("fae", over, ["fae", "autoencoder"]) == ["eval.kmeans_seeds=1", "model.shared_dim=3"]
    assert method_overrides("autoencoder", over, ["fae", "autoencoder"]) == ["eval.kmeans_seeds=1", "model.code_dim=4"]


# ---------------------------------------------------------------------------- resume and determinism
def test_resume_refuses_another_thread_count_and_cleans_orphans(finished, config, tmp_path, capsys):
    run_dir = copy_run(finished, tmp_path / "run")
    last = run_dir / "checkpoints" / "last.pt"
    state = ckpt.load(last)
    assert state["threads"] == 1
    ckpt.atomic_save({**state, "done": False, "stage_index": 0, "epoch": 1, "batch": 0,
                      "optimizers": {}}, last)
    fails(capsys, ["train", config, "train.threads=2", "--out", run_dir, "--resume"],
          "trained with 1 threads, this process has 2", "train.threads=1")
    orphan = run_dir / "checkpoints" / ".last.pt.tmp12345"
    orphan.write_bytes(b"half a checkpoint")
    assert main(["train", str(config), "train.threads=2", "--out", str(run_dir), "--resume",
                 "--allow-changed", "train.threads"]) == 0
    assert not orphan.exists() and ckpt.load(last)["done"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["final.pt", "last.pt"]


# ---------------------------------------------------------------------------- progress and output
def test_plain_progress_lines_for_training_evaluation_and_bench(config, tmp_path, capsys):
    args = ["run", str(config), "train.progress=lines", "train.progress_every=0", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "viewsplit: train: epoch 1/2, step 1/3 | objective" in err
    assert re.search(r"epoch 2/2, step 3/3 \| objective [-\d.e]+.* \| elapsed \d+s, stage ETA 0s", err)
    assert "viewsplit: eval: k-means on C (test split, 1 seeds)" in err
    assert "viewsplit: eval: probe logreg on V_1" in err
    # training without a terminal (stderr is captured here) logs lines by default, not a bar: after the first
    # step, then every train.progress_every seconds, and after the last step
    assert main(["train", str(config), "train.progress=auto", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "viewsplit: train: epoch 1/2, step 1/3" in err and "viewsplit: train: epoch 2/2, step 3/3" in err
    assert "epoch 1/2, step 2/3" not in err
    over = ["data.train_limit=60", "data.test_limit=20", "stages.train.epochs=1", "stages.train.batch_size=32",
            "eval.kmeans_seeds=1",
            "eval.probes=[logreg]", "eval.figures=false", "train.progress=never"]
    assert main(["bench", "--methods", "autoencoder", "--seeds", "1", "--out", str(tmp_path / "b"), *over]) == 0
    assert "viewsplit: bench handwritten/autoencoder seed 1/1: training into" in capsys.readouterr().err


def test_version_methods_and_help_defaults(capsys):
    with pytest.raises(SystemExit) as ok:
        main(["--version"])
    assert ok.value.code == 0 and capsys.readouterr().out.strip() == f"viewsplit {viewsplit.__version__}"
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in available_methods():
        assert f"\n{name}: " in out
    assert "  stage consistency: " in out and "  stage disentangle: " in out and "model keys: c_dim=10" in out
    assert "epochs=10, steps=None, min_steps=0, batch_size=256" in out
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.help != argparse.SUPPRESS and not action.required \
                    and action.dest != "help":
                helptext = sub._get_formatter()._get_help_string(action)
                assert "default" in helptext, (name, action.dest)
        assert "(default:" in text


def test_a_later_stage_batch_size_fails_before_the_first_stage_trains(tmp_path, capsys):
    fails(capsys, ["train", "handwritten/mrdd", "data.name=synthetic", "data.n_samples=60", "data.view_dim=6",
                   "stages.consistency.batch_size=8", "stages.disentangle.batch_size=1000", "--out", tmp_path / "r"],
          "stages.disentangle.batch_size: 1000 exceeds the 48 training samples")
    assert not (tmp_path / "r" / "checkpoints").exists()

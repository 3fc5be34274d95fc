"""Nothing a user gave is overwritten, a run folder has one writer, and no output is left half-written
(issue 33: data loss, nothing half-written; issue 32: a refused or pointless --resume writes nothing)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from helpers import TINY_FAE, fails, snapshot

from viewsplit.cli import main
from viewsplit.config import load_config
from viewsplit.engine import checkpoint as ckpt
from viewsplit.engine.run import train
from viewsplit.errors import ConfigError
from viewsplit.files import LOCK_NAME, run_lock


@pytest.fixture(autouse=True)
def _one_thread():
    """Runs compared with each other train on one thread (float results depend on it)."""
    torch.set_num_threads(1)


def views_npz(path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(1)
    np.savez(path, view0=rng.normal(size=(n, 6)), view1=rng.normal(size=(n, 6)))
    return path


# ---------------------------------------------------------------------------- outputs that are inputs
def _encode_onto_data(d: Path, run: Path) -> list:
    data = views_npz(d / "in.npz")
    return ["encode", run, "--data", data, "--out", data]


def _encode_onto_model_file(d: Path, run: Path) -> list:
    model = shutil.copy(run / "checkpoints" / "final.pt", d / "model.pt")
    return ["encode", model, "--data", views_npz(d / "in.npz"), "--out", model]


def _encode_onto_data_folder(d: Path, run: Path) -> list:
    assert main(["convert", "--npz", str(views_npz(d / "in.npz")), "--out", str(d / "folder")]) == 0
    return ["encode", run, "--data", d / "folder", "--out", d / "folder"]


def _encode_onto_symlinked_data(d: Path, run: Path) -> list:
    data = views_npz(d / "in.npz")
    (d / "link.npz").symlink_to(data)
    return ["encode", run, "--data", data, "--out", d / "link.npz"]


def _encode_onto_hard_linked_data(d: Path, run: Path) -> list:
    data = views_npz(d / "in.npz")
    os.link(data, d / "same.npz")
    return ["encode", run, "--data", data, "--out", d / "same.npz"]


def _encode_onto_run_folder(d: Path, run: Path) -> list:
    return ["encode", run, "--data", views_npz(d / "in.npz"), "--out", run]


def _predict_onto_data(d: Path, run: Path) -> list:
    data = views_npz(d / "in.npz")
    return ["predict", run, "--views", "0", "--data", data, "--out", data]


def _predict_onto_data_without_suffix(d: Path, run: Path) -> list:
    data = views_npz(d / "in.npz")   # numpy would append .npz to --out in: the same file
    return ["predict", run, "--views", "0", "--data", data, "--out", d / "in"]


def _predict_onto_model_file(d: Path, run: Path) -> list:
    model = shutil.copy(run / "checkpoints" / "final.pt", d / "model.npz")   # any name loads as a model file
    return ["predict", model, "--views", "0", "--data", views_npz(d / "in.npz"), "--out", model]


INPUTS = {
    "encode --out = --data": (_encode_onto_data, ["--out", "in.npz", "input"]),
    "encode --out = the model file": (_encode_onto_model_file, ["--out", "model.pt"]),
    "encode --out = the data folder": (_encode_onto_data_folder, ["--out", "folder", "input"]),
    "encode --out = a symlink to --data": (_encode_onto_symlinked_data, ["--out", "link.npz", "in.npz"]),
    "encode --out = a hard link to --data": (_encode_onto_hard_linked_data, ["--out", "same.npz", "in.npz"]),
    "encode --out = the run folder": (_encode_onto_run_folder, ["--out", "input"]),
    "predict --out = --data": (_predict_onto_data, ["--out", "in.npz", "input"]),
    "predict --out = --data without .npz": (_predict_onto_data_without_suffix, ["--out", "in.npz", "input"]),
    "predict --out = the model file": (_predict_onto_model_file, ["--out", "model.npz", "input"]),
}


@pytest.mark.parametrize("case", INPUTS)
def test_an_output_that_is_an_input_is_refused(tmp_path, capsys, finished, case):
    make, culprits = INPUTS[case]
    run = shutil.copytree(finished, tmp_path / "run")
    argv = make(tmp_path, run)
    before = snapshot(tmp_path)
    fails(capsys, argv, *culprits)
    assert snapshot(tmp_path) == before


def test_predict_writes_beside_the_run_files_but_never_over_them(tmp_path, finished):
    run = shutil.copytree(finished, tmp_path / "run")
    assert main(["predict", str(run), "--views", "0", "--out", str(run / "checkpoints" / "p.npz")]) == 0
    assert np.load(run / "checkpoints" / "p.npz").files == ["index", "pred_view1"]
    before = snapshot(run)
    assert main(["predict", str(run), "--views", "0", "--out", str(run / "config.yaml")]) == 0   # as numpy names it
    after = snapshot(run)
    assert set(after) - set(before) == {"config.yaml.npz"} and all(after[k] == v for k, v in before.items())


# ---------------------------------------------------------------------------- run folders
def test_a_run_writes_only_into_a_new_empty_or_run_folder(tmp_path, capsys, config, finished):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "metrics.json").write_text('{"mine": 1}')
    (user / "log.jsonl").write_text('{"my": "log"}\n')
    before = snapshot(user)
    for cmd in ("train", "run"):
        fails(capsys, [cmd, config, "--out", user], str(user), "not a viewsplit run folder", "--out")
        fails(capsys, [cmd, config, "--out", user, "--resume"], str(user), "not a viewsplit run folder")
    fails(capsys, ["eval", finished, "--out", user], str(user), "not a viewsplit report")
    assert snapshot(user) == before
    # an empty folder is fine, and then holds a run
    (tmp_path / "empty").mkdir()
    assert main(["train", str(config), "--out", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / LOCK_NAME).is_file() and (tmp_path / "empty" / "checkpoints" / "final.pt").is_file()
    # a folder written before the lock file existed (config.yaml + checkpoints/) is still a run folder
    old = shutil.copytree(finished, tmp_path / "old")
    (old / LOCK_NAME).unlink()
    assert main(["train", str(config), "--out", str(old), "--resume"]) == 0


def test_eval_never_writes_its_report_into_another_run(tmp_path, capsys, finished):
    other = shutil.copytree(finished, tmp_path / "other")
    before = snapshot(other)
    fails(capsys, ["eval", finished, "--out", other], str(other), "another run's folder")
    assert snapshot(other) == before


def test_a_run_finished_meanwhile_by_another_process_is_not_overwritten(tmp_path, monkeypatch, config, finished):
    """Between the first checks and the lock, another process trains into the same new folder: the lock
    holder checks again and refuses."""
    from viewsplit.engine import run as run_module

    real, run_dir = run_module.prepare, tmp_path / "run"

    def prepare_while_another_finishes(*args, **kwargs):
        out = real(*args, **kwargs)
        shutil.copytree(finished, run_dir)
        return out

    monkeypatch.setattr(run_module, "prepare", prepare_while_another_finishes)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(load_config(config), run_dir)
    assert snapshot(run_dir) == snapshot(finished)


def test_a_second_writer_is_refused_naming_the_folder(tmp_path, capsys, config, finished):
    run = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(run)
    with run_lock(run):
        fails(capsys, ["train", config, "--out", run, "--resume"], str(run), "another viewsplit process",
              f"pid {os.getpid()}")
        fails(capsys, ["run", config, "--out", run, "--resume"], str(run), "another viewsplit process")
        fails(capsys, ["eval", run], str(run), "another viewsplit process")
        new = tmp_path / "new"
        with run_lock(new):
            fails(capsys, ["train", config, "--out", new], str(new), "another viewsplit process")
        assert not new.exists()   # the lock of a folder nothing was written to leaves no trace
    assert snapshot(run) == before
    assert main(["eval", str(run)]) == 0   # released: the next writer proceeds


def test_a_killed_writer_leaves_no_stuck_lock(tmp_path, capsys, config):
    run = tmp_path / "run"
    code = (f"import time\nfrom viewsplit.files import run_lock\nwith run_lock({str(run)!r}):\n"
            "    print('locked', flush=True)\n    time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        fails(capsys, ["train", config, "--out", run], str(run), f"pid {holder.pid}")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
    finally:
        holder.kill()
        holder.wait(30)
    assert (run / LOCK_NAME).exists()   # the file stays; the kernel dropped the lock with the process
    assert main(["train", str(config), "--out", str(run)]) == 0
    assert ckpt.load(run / "checkpoints" / "last.pt")["done"]


# ---------------------------------------------------------------------------- resume (issue 32)
def _cut(finished: Path, dst: Path) -> Path:
    """A copy of ``finished`` whose last.pt marks the end of its first epoch."""
    run = shutil.copytree(finished, dst)
    (run / "checkpoints" / "final.pt").unlink()
    state = ckpt.load(run / "checkpoints" / "last.pt")
    ckpt.atomic_save({**state, "done": False, "stage_index": 0, "epoch": 1, "batch": 0, "optimizers": {}},
                     run / "checkpoints" / "last.pt")
    return run


def test_a_refused_resume_writes_nothing_and_names_every_key(tmp_path, capsys, config, finished):
    run = _cut(finished, tmp_path / "run")
    before = snapshot(run)
    changed = ["stages.train.epochs=3", "stages.train.lr=0.002", "train.seed=7"]
    line = fails(capsys, ["train", config, *changed, "--out", run, "--resume"],
                 "stages.train.epochs", "stages.train.lr", "train.seed")
    assert "--allow-changed stages.train.epochs,stages.train.lr,train.seed" in line
    assert snapshot(run) == before          # config.yaml too: it still holds the run's own config
    fails(capsys, ["train", config, "model.shared_dim=3", "stages.train.lr=0.002", "--out", run, "--resume",
                   "--allow-changed", "stages.train.lr"], "model.shared_dim", "cannot change")
    assert snapshot(run) == before
    # the advice works: with the keys allowed, the run continues and config.yaml records the new settings
    assert main(["train", str(config), *changed, "--out", str(run), "--resume", "--allow-changed",
                 "stages.train.epochs,stages.train.lr,train.seed"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["stages"]["train"]["epochs"] == 3 and saved["train"]["seed"] == 7


def test_resuming_a_finished_run_with_a_changed_setting_says_it_was_not_applied(tmp_path, capsys, config, finished):
    run = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(run)
    for allow in ([], ["--allow-changed", "stages.train.lr"]):
        fails(capsys, ["train", config, "stages.train.lr=0.002", "--out", run, "--resume", *allow],
              str(run), "finished training", "stages.train.lr", "not applied")
    assert snapshot(run) == before
    assert main(["train", str(config), "--out", str(run), "--resume"]) == 0   # the same config: nothing to do
    assert snapshot(run) == before


# ---------------------------------------------------------------------------- nothing half-written
def _convert_bad_second_csv(d: Path) -> list:
    (d / "a.csv").write_text("".join(f"{i},{i % 3}\n" for i in range(10)))
    (d / "b.csv").write_text("".join(f"{i % 2},{i}\n" for i in range(9)) + "x,1\n")
    return ["convert", "--csv", d / "a.csv", d / "b.csv", "--chunk", "4", "--out", d / "out"]


def _train_batch_too_large(d: Path) -> list:
    (d / "c.yaml").write_text(yaml.safe_dump(TINY_FAE))
    return ["train", d / "c.yaml", "stages.train.batch_size=500", "stages.train.drop_last=true", "--out", d / "out"]


def _run_bad_eval_setting(d: Path) -> list:
    (d / "c.yaml").write_text(yaml.safe_dump(TINY_FAE))
    return ["run", d / "c.yaml", "eval.representations=[nope]", "--out", d / "out"]


def _encode_wrong_views(d: Path) -> list:
    np.savez(d / "in.npz", view0=np.zeros((5, 6)), view1=np.zeros((5, 4)))
    return ["encode", d / "run", "--data", d / "in.npz", "--out", d / "out" / "f.npz"]


def _encode_folder_wrong_views(d: Path) -> list:
    np.savez(d / "in.npz", view0=np.zeros((5, 6)), view1=np.zeros((5, 4)))
    return ["encode", d / "run", "--data", d / "in.npz", "--out", d / "out"]


def _plot_bad_log(d: Path) -> list:
    with open(d / "run" / "log.jsonl", "a") as fh:
        fh.write("{not json\n")
    return ["plot", d / "run", "--out", d / "out"]


HALF_WRITTEN = {
    "convert: the second CSV fails": (_convert_bad_second_csv, ["b.csv"]),
    "train: config.yaml before a batch-size check": (_train_batch_too_large, ["stages.train.batch_size"]),
    "run: config.yaml before an eval check": (_run_bad_eval_setting, ["nope"]),
    "encode .npz: wrong view width": (_encode_wrong_views, ["view 1"]),
    "encode folder: wrong view width": (_encode_folder_wrong_views, ["view 1"]),
    "plot: an unreadable log": (_plot_bad_log, ["log.jsonl", "line"]),
}


@pytest.mark.parametrize("case", HALF_WRITTEN)
def test_a_failed_command_leaves_nothing_behind(tmp_path, capsys, finished, case):
    make, culprits = HALF_WRITTEN[case]
    if case.startswith("plot"):
        pytest.importorskip("matplotlib")
    shutil.copytree(finished, tmp_path / "run")
    argv = make(tmp_path)
    before = snapshot(tmp_path)
    fails(capsys, argv, *culprits)
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_convert_retries_into_the_same_folder_after_a_failure(tmp_path, capsys):
    argv = _convert_bad_second_csv(tmp_path)
    fails(capsys, argv, "b.csv")
    (tmp_path / "b.csv").write_text("".join(f"{i % 2},{i}\n" for i in range(10)))
    assert main([str(a) for a in argv]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["view0.npy", "view1.npy"]


def test_plot_replaces_its_pictures_only_when_all_are_drawn(tmp_path, capsys, finished):
    pytest.importorskip("matplotlib")
    run = shutil.copytree(finished, tmp_path / "run")
    assert main(["plot", str(run), "--max-points", "12"]) == 0
    before = snapshot(run / "plots")
    assert "loss_curves.png" in before and "embedding.npz" in before
    with open(run / "log.jsonl", "a") as fh:
        fh.write("{not json\n")
    fails(capsys, ["plot", run, "--max-points", "12", "--seed", "3"], "log.jsonl")
    assert snapshot(run / "plots") == before


def test_a_refused_run_leaves_an_empty_folder_empty(tmp_path, capsys, config):
    (tmp_path / "empty").mkdir()
    fails(capsys, ["run", config, "eval.representations=[nope]", "--out", tmp_path / "empty"], "nope")
    assert list((tmp_path / "empty").iterdir()) == []
    with pytest.raises(ConfigError, match=r"stages\.train\.batch_size"):
        train(load_config(config, ["stages.train.batch_size=500", "stages.train.drop_last=true"]), tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []

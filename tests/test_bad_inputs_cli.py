"""Unusual input through the CLI (issue 33): each case ends in one line naming the culprit (exit code 2, no
traceback) and leaves every file as it was, or, where the input is usable, trains with a one-line warning."""
import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import fails

import viewsplit
from viewsplit.cli import main
from viewsplit.config import load_config
from viewsplit.data import MultiViewDataset
from viewsplit.engine.run import train
from viewsplit.errors import MAX_MESSAGE, CheckpointError, ConfigError, DataError

RAW = {"method": "fae", "data": {"name": "synthetic", "n_samples": 40, "n_views": 2, "view_dim": 6, "n_classes": 2},
       "model": {"shared_dim": 2, "private_dim": 2, "backbone": {"hidden": [8]}},
       "stages": {"train": {"epochs": 1, "batch_size": 8}},
       "train": {"progress": "never", "threads": 1},
       "eval": {"kmeans_seeds": 1, "probes": ["logreg"], "figures": False, "plots": False}}


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (and every folder, as "dir") with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A trained fae run folder on two 6-feature views."""
    cfg = tmp_path_factory.mktemp("cfg") / "fae.yaml"
    cfg.write_text(yaml.safe_dump(RAW))
    run_dir = tmp_path_factory.mktemp("runs") / "fae"
    train(load_config(cfg), run_dir)
    return run_dir


@pytest.fixture
def work(tmp_path, monkeypatch, model) -> Path:
    """A folder of inputs, the current directory: cfg.yaml, d.npz (two 6-feature views), run (a trained run) and
    the model files whose saved config and weights disagree."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(RAW))
    for method, model_keys in (("autoencoder", {"code_dim": 2}), ("fusion", {})):
        (tmp_path / f"{method}.yaml").write_text(yaml.safe_dump({**RAW, "method": method, "model": model_keys}))
    (tmp_path / "run").symlink_to(model)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", view0=rng.normal(size=(20, 6)), view1=rng.normal(size=(20, 6)))
    state = torch.load(model / "checkpoints" / "final.pt", weights_only=True)
    shape = copy.deepcopy(state)
    shape["config"]["model"]["shared_dim"] = 5
    torch.save(shape, tmp_path / "shape.pt")
    missing = copy.deepcopy(state)
    missing["model"].pop(next(iter(missing["model"])))
    torch.save(missing, tmp_path / "missing.pt")
    key = copy.deepcopy(state)
    key["config"]["model"]["nope"] = 1
    torch.save(key, tmp_path / "key.pt")
    return tmp_path


def npz(name: str, n: int = 20, **arrays) -> str:
    rng = np.random.default_rng(1)
    base = {"view0": rng.normal(size=(n, 6)), "view1": rng.normal(size=(n, 3)), "labels": np.arange(n) % 2}
    np.savez(name, **{k: v for k, v in {**base, **arrays}.items() if v is not None})
    return name


def folder(name: str, extra: bytes = b"", text: bool = False, mask: np.ndarray | None = None) -> str:
    """An on-disk folder (view0.npy, view1.npy, labels.npy), view1.npy optionally damaged, with mask.npy."""
    Path(name).mkdir()
    rng = np.random.default_rng(2)
    np.save(f"{name}/view0.npy", rng.normal(size=(20, 6)).astype(np.float32))
    np.save(f"{name}/view1.npy", rng.normal(size=(20, 3)).astype(np.float32))
    np.save(f"{name}/labels.npy", np.arange(20) % 2)
    if mask is not None:
        np.save(f"{name}/mask.npy", mask)
    with open(f"{name}/view1.npy", "ab") as fh:
        fh.write(extra)
    if text:
        Path(f"{name}/view1.npy").write_text("1,2,3\n4,5,6\n")
    return name


def csv(name: str, text: str) -> str:
    Path(name).write_text(text)
    return name


ROWS = "".join(f"{i},{i % 3},{i % 5}\n" for i in range(12))
NO_VIEW1 = np.ones((20, 2), dtype=bool)
NO_VIEW1[:, 1] = False
TRAIN = ["train", "cfg.yaml"]

#: category → case → (argv built in the work folder, culprits the error line names)
CASES = {
    "config values": {
        "negative seed": lambda: ([*TRAIN, "train.seed=-5"], ["train.seed", "-5"]),
        "seed 2**64": lambda: ([*TRAIN, "train.seed=18446744073709551616"], ["train.seed"]),
        "negative data seed": lambda: ([*TRAIN, "data.seed=-1"], ["data.seed", "-1"]),
        "seed 2**32": lambda: ([*TRAIN, "data.missing_seed=4294967296"], ["data.missing_seed"]),
        "lr nan": lambda: ([*TRAIN, "stages.train.lr=nan"], ["stages.train.lr", "finite"]),
        "lr inf": lambda: ([*TRAIN, "stages.train.lr=inf"], ["stages.train.lr", "finite"]),
        "lr 1e400": lambda: ([*TRAIN, "stages.train.lr=1e400"], ["stages.train.lr", "finite"]),
        "model=null": lambda: ([*TRAIN, "model=null"], ["model=null", "model.KEY=VALUE"]),
        "stage=null": lambda: ([*TRAIN, "stages.train=null"], ["stages.train=null", "batch_size, epochs"]),
        "dropout 2": lambda: ([*TRAIN, "model.backbone.dropout=2"], ["model.backbone.dropout", "[0.0, 1.0)", "2.0"]),
        "unknown section": lambda: ([*TRAIN, "foo.bar=1"], ["foo"]),
        "best_view beyond the views (autoencoder)": lambda: (
            ["run", "autoencoder.yaml", "eval.best_view=2"], ["eval.best_view: 2"]),
    },
    "config files": {
        "duplicate key": lambda: (["train", csv("dup.yaml", "method: fae\nmethod: mrdd\n")],
                                  ["dup.yaml", "duplicate key 'method'", "line 2"]),
        "alias bomb": lambda: (["train", csv("bomb.yaml", "".join(
            [f"a0: &a0 [{', '.join(['x'] * 9)}]\n"]
            + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)]) + "method: fae\n")],
            ["bomb.yaml", "expands to more than"]),
        "recursive alias": lambda: (["train", csv("rec.yaml", "method: fae\nmodel: &m {backbone: {hidden: *m}}\n")],
                                    ["rec.yaml", "refers to"]),
        "nesting 3000 deep": lambda: (["train", csv("deep.yaml", "method: fae\nmodel: " + "[" * 3000 + "]" * 3000)],
                                      ["deep.yaml", "more than 50 deep"]),
        "nesting 3000 deep in an override": lambda: ([*TRAIN, "model.x=" + "[" * 3000 + "]" * 3000],
                                                     ["model.x=", "more than 50 deep"]),
        "duplicate key in an override": lambda: ([*TRAIN, "model={shared_dim: 2, shared_dim: 3}"],
                                                 ["model={shared_dim", "duplicate key 'shared_dim'"]),
        "empty file": lambda: (["train", csv("empty.yaml", "")], ["empty.yaml", "empty"]),
    },
    "options": {
        "convert --chunk 0": lambda: (["convert", "--npz", "d.npz", "--out", "c", "--chunk", "0"], ["--chunk", "0"]),
        "convert --chunk -1": lambda: (["convert", "--npz", "d.npz", "--out", "c", "--chunk", "-1"], ["--chunk"]),
        "encode --batch-size 0": lambda: (["encode", "run", "--data", "d.npz", "--out", "e.npz", "--batch-size", "0"],
                                          ["--batch-size", "0"]),
        "encode --batch-size -2": lambda: (["encode", "run", "--data", "d.npz", "--out", "e", "--batch-size", "-2"],
                                           ["--batch-size"]),
        "predict --views 0,0": lambda: (["predict", "run", "--views", "0,0", "--out", "p.npz"], ["--views", "twice"]),
        "encode --device tpu": lambda: (["encode", "run", "--data", "d.npz", "--out", "e.npz", "--device", "tpu"],
                                        ["--device", "tpu"]),
        "plot --seed -1": lambda: (["plot", "run", "--seed", "-1", "--out", "pl"], ["--seed", "-1"]),
        "datasets data.root missing": lambda: (["datasets", "data.root=/nonexistent/x"], ["data.root",
                                                                                          "/nonexistent/x"]),
        "datasets --root missing": lambda: (["datasets", "--root", "/nonexistent/x"], ["--root", "/nonexistent/x"]),
        "convert --labels with --npz": lambda: (["convert", "--npz", "d.npz", "--labels", "y.csv", "--out", "c"],
                                                ["--labels", "--csv"]),
        "convert --out a file": lambda: (["convert", "--npz", "d.npz", "--out", "cfg.yaml"], ["cfg.yaml", "a file"]),
        "--mask of the wrong shape": lambda: (
            ["encode", "run", "--data", "d.npz", "--mask", np.save("m.npy", np.ones((20, 3), bool)) or "m.npy",
             "--out", "e.npz"], ["m.npy (--mask)", "(20, 2)"]),
    },
    "model files whose config and weights disagree": {
        "encode, a layer of another shape": lambda: (["encode", "shape.pt", "--data", "d.npz", "--out", "e.npz"],
                                                     ["shape.pt", "do not match", "saved, (7, 8) expected"]),
        "encode, a missing weight": lambda: (["encode", "missing.pt", "--data", "d.npz", "--out", "e.npz"],
                                             ["missing.pt", "missing: "]),
        "encode, an unknown config key": lambda: (["encode", "key.pt", "--data", "d.npz", "--out", "e.npz"],
                                                  ["key.pt", "model.nope"]),
        "predict, a layer of another shape": lambda: (["predict", "shape.pt", "--data", "d.npz", "--views", "0",
                                                       "--out", "p.npz"], ["shape.pt", "do not match"]),
    },
    "data files": {
        ".npy with bytes past its shape": lambda: ([*TRAIN, "data.name=folder", f"data.path={folder('f', b'xxxx')}"],
                                                   ["view1.npy", "4 bytes past", "(20, 3) float32"]),
        "text file as .npy": lambda: ([*TRAIN, "data.name=folder", f"data.path={folder('f', text=True)}"],
                                      ["view1.npy", "not a .npy file", "text"]),
        "view missing in every sample": lambda: ([*TRAIN, "data.name=folder",
                                                  f"data.path={folder('f', mask=NO_VIEW1)}"],
                                                 ["view 1 ('view1')", "missing", "every one"]),
        "npz without views": lambda: ([*TRAIN, "data.name=npz", "data.path=" + npz("e.npz", view0=None, view1=None)],
                                      ["e.npz", "0 view arrays"]),
        "npz with one view": lambda: ([*TRAIN, "data.name=npz", "data.path=" + npz("e.npz", view1=None)],
                                      ["e.npz", "1 view arrays"]),
        "scalar view": lambda: ([*TRAIN, "data.name=npz", "data.path=" + npz("e.npz", view0=np.float64(3))],
                                ["e.npz", "'view0'", "single number"]),
        "labels of another length": lambda: ([*TRAIN, "data.name=npz", "data.path=" + npz("e.npz", labels=np.zeros(7))],
                                             ["e.npz", "7 labels for the 20 samples"]),
        "labels below -1": lambda: ([*TRAIN, "data.name=npz", "data.path=" + npz("e.npz", labels=np.arange(20) - 3)],
                                    ["e.npz", "'labels'", "[-3, -2]"]),
        "labels as strings": lambda: ([*TRAIN, "data.name=npz",
                                       "data.path=" + npz("e.npz", labels=np.array(["a", "b"] * 10))],
                                      ["e.npz", "'labels'", "dtype <U1"]),
        "supervised method, unlabelled samples": lambda: (
            ["run", "fusion.yaml", "data.name=npz",
             "data.path=" + npz("e.npz", labels=np.r_[-1, np.arange(19) % 2])], ["fusion", "unlabelled", "label -1"]),
        "CSV with an empty cell": lambda: ([*TRAIN, "data.name=csv",
                                            f"data.views=[{csv('a.csv', ROWS.replace('4,1,4', '4,,4'))},"
                                            f"{csv('b.csv', ROWS)}]"], ["a.csv", "line 5", "''"]),
        "a split left empty": lambda: ([*TRAIN, "data.n_samples=3"], ["no samples", "data.test_fraction"]),
        "same CSV twice": lambda: ([*TRAIN, "data.name=csv", f"data.views=[{csv('a.csv', ROWS)},a.csv]"],
                                   ["data.views", "a.csv", "more than once"]),
    },
    "convert CSVs": {
        "header naming fewer columns": lambda: (["convert", "--csv", csv("a.csv", "x,y\n" + ROWS), csv("b.csv", ROWS),
                                                 "--out", "c"], ["a.csv", "header has 2 names", "3 columns"]),
        "ragged line": lambda: (["convert", "--csv", csv("a.csv", ROWS + "1,2\n"), csv("b.csv", ROWS + "1,2,3\n"),
                                 "--out", "c", "--chunk", "5"], ["a.csv", "line 13", "2 columns"]),
        "a word among numbers": lambda: (["convert", "--csv", csv("a.csv", ROWS.replace("4,1,4", "4,one,4")),
                                          csv("b.csv", ROWS), "--out", "c"], ["a.csv", "line 5", "'one'"]),
        "different row counts": lambda: (["convert", "--csv", csv("a.csv", ROWS),
                                          csv("b.csv", ROWS[:ROWS.rindex("11,")]), "--out", "c"],
                                         ["a.csv", "b.csv", "12", "11"]),
    },
}


@pytest.mark.parametrize("category, case", [(c, k) for c, cases in CASES.items() for k in cases])
def test_unusual_input_is_one_line_and_changes_nothing(work, capsys, category, case):
    argv, culprits = CASES[category][case]()
    before = snapshot(work)
    line = fails(capsys, argv, *culprits)
    assert snapshot(work) == before, "a file was written, changed or left behind"
    assert "eta_min" not in line and "view0.npy" not in line and "ragged" not in line
    assert len(line) < MAX_MESSAGE + 100


def test_imagefolder_classes_differing_in_case_are_named(work, capsys):
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    for view, cls in (("a", "cat"), ("a", "dog"), ("b", "Cat"), ("b", "dog")):
        for i in range(4):
            path = work / "img" / view / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(path)
    before = snapshot(work)
    fails(capsys, [*TRAIN, "data.name=imagefolder", "data.path=img", "data.image_size=8", "data.cache=false"],
          "a/cat", "b/Cat", "differ only in case")
    assert snapshot(work) == before


@pytest.mark.parametrize("arrays, warning", [
    (dict(view1=np.full((40, 3), 2.0)), "view 1 ('view1'): every present training sample holds the same values"),
    (dict(labels=np.where(np.arange(40) % 2, 1, -1)), "the labels are -1 and 1 only"),
])
def test_usable_but_suspicious_data_trains_with_a_one_line_warning(work, capsys, arrays, warning):
    path = npz("w.npz", n=40, **arrays)
    assert main([*TRAIN, "data.name=npz", f"data.path={path}", "--out", "r"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("viewsplit: warning:")]
    assert len(lines) == 1 and warning in lines[0] and "Traceback" not in err, err


def test_tilde_in_path_options_means_home(work, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(work / "home"))
    (work / "home").mkdir()
    assert main(["convert", "--npz", "d.npz", "--out", "~/converted"]) == 0
    assert main(["encode", "run", "--data", "d.npz", "--out", "~/features.npz"]) == 0
    assert (work / "home" / "converted" / "view0.npy").exists() and (work / "home" / "features.npz").exists()
    assert not (work / "~").exists()


def test_python_api_names_the_culprit(work):
    with pytest.raises(CheckpointError, match=r"shape.pt: the saved weights do not match"):
        viewsplit.load(work / "shape.pt")
    with pytest.raises(DataError, match=r"view names must be distinct, \['a'\]"):
        MultiViewDataset([torch.zeros(3, 2), torch.zeros(3, 2)], view_names=["a", "a"])
    with pytest.raises(ConfigError) as err:
        load_config(work / "cfg.yaml", [f"method={'x' * 100000}"])
    assert len(str(err.value)) <= MAX_MESSAGE + 50 and "characters]" in str(err.value)


def test_a_byte_order_mark_is_not_a_header(work, capsys):
    """A CSV saved with a UTF-8 byte-order mark (as spreadsheet programs do) keeps its first row."""
    from viewsplit.data.user import _read_csv

    path = work / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ROWS.encode())
    assert _read_csv(path).shape == (12, 3)
    assert main(["convert", "--csv", "bom.csv", "bom.csv", "--out", "c"]) == 0
    assert np.load(work / "c" / "view0.npy").shape == (12, 3)


"""Every bad input ends in one clear line (exit code 2, no traceback) that names the culprit, before training."""
from pathlib import Path

import numpy as np
import pytest

from viewsplit.cli import main

CONFIG = "handwritten/autoencoder"
TINY = ["stages.train.epochs=1", "stages.train.batch_size=4", "train.progress=never", "eval.kmeans_seeds=1",
        "eval.probes=[logreg]", "eval.figures=false"]


def fails(capsys, argv: list[str], *culprits: str) -> str:
    """Run the CLI in-process: exit code 2, one line on stderr naming every culprit, no traceback."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("viewsplit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for c in culprits:
        assert c in lines[0], (c, lines[0])
    return lines[0]


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

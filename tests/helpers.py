"""Small builders shared by the tests: synthetic files laid out like the real data sets."""
from __future__ import annotations

import gzip
import importlib
import struct
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def import_benchmark(name: str) -> ModuleType:
    """Import the script ``benchmarks/<name>.py`` as a module (the folder is not a package)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


#: a tiny FAE run on synthetic data (2 epochs of 3 steps, a checkpoint after every step), for the CLI tests
TINY_FAE = {"method": "fae",
            "data": {"name": "synthetic", "n_samples": 60, "n_views": 2, "view_dim": 6, "n_classes": 2},
            "model": {"shared_dim": 2, "private_dim": 2, "backbone": {"hidden": [8]}},
            "stages": {"train": {"epochs": 2, "batch_size": 16}},
            "train": {"progress": "never", "threads": 1, "checkpoint_every_steps": 1, "tensorboard": False},
            "eval": {"kmeans_seeds": 1, "probes": ["logreg"], "figures": False, "plots": False}}


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too) with its bytes; not the run-folder lock files, which each
    writer stamps with its pid when it takes the lock."""
    from viewsplit.files import LOCK_NAME

    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_NAME}


def fails(capsys, argv: list, *culprits: str) -> str:
    """Run the CLI in-process: exit code 2, one ``viewsplit: error:`` line naming every culprit, no traceback."""
    from viewsplit.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("viewsplit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for c in culprits:
        assert c in lines[0], (c, lines[0])
    return lines[0]


def write_idx(path: Path, arr: np.ndarray, gz: bool) -> Path:
    arr = np.asarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    data = header + arr.tobytes()
    path = Path(str(path) + (".gz" if gz else ""))
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist_like(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> Path:
    """IDX files with one bright pixel per image (at a position depending on the index), labels i mod 10."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        imgs = np.zeros((n, 28, 28), dtype=np.uint8)
        for i in range(n):
            imgs[i, 5 + i % 18, 5 + (3 * i) % 18] = 255
        write_idx(folder / f"{split}-images-idx3-ubyte", imgs, gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    return folder


def assert_same_batches(a, b, size: int, float32: bool = False, **kw) -> None:
    """Data sets ``a`` and ``b`` give identical batches (index, labels, mask, views) for ``batches(size, **kw)``;
    with ``float32``, every view batch is float32 as well."""
    ba, bb = list(a.batches(size, **kw)), list(b.batches(size, **kw))
    assert len(ba) == len(bb) > 0
    for x, y in zip(ba, bb):
        assert torch.equal(x.index, y.index) and torch.equal(x.labels, y.labels) and torch.equal(x.mask, y.mask)
        assert all((not float32 or u.dtype == torch.float32) and torch.equal(u, v) for u, v in zip(x.views, y.views))


class Killed(Exception):
    """What :func:`train_killed_at` raises in place of a crash."""


def train_killed_at(monkeypatch, train, cfg, run_dir, call: int) -> None:
    """``train(cfg, run_dir)`` with the ``call``-th ``Trainer._train_step`` (1-based) raising :class:`Killed`,
    as a crash between steps would; the real step is restored afterwards."""
    import pytest

    from viewsplit.engine.trainer import Trainer

    original, calls = Trainer._train_step, {"n": 0}

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == call:
            raise Killed
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "_train_step", dying)
    with pytest.raises(Killed):
        train(cfg, run_dir)
    monkeypatch.setattr(Trainer, "_train_step", original)


def two_views(n: int = 160, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """A shared 3-d factor seen through two random linear maps at very different scales (float64 and int)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    y = (z[:, 0] > 0).astype(int) + (z[:, 1] > 0).astype(int)
    x0 = z @ rng.normal(size=(3, 12)) + 0.1 * rng.normal(size=(n, 12))
    x1 = np.round(100 * z @ rng.normal(size=(3, 8)) + 500).astype(np.int32)
    return [x0, x1], y


#: a tiny MRDD estimator; one thread: the engine's float results depend on the thread count, and the
#: CLI runs compared with it must match
SMALL_MRDD = dict(c_dim=4, v_dim=3, consistency={"hidden": [32]}, specific={"hidden": [16]}, epochs=2, batch_size=64,
                  random_state=3, threads=1)

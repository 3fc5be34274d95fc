"""COIL and Office-31 with ``data.stream``: image files decoded per batch in the prefetch thread give exactly the
eager path's batches (resize, uint8 → [0, 1], standardisation), and a DDP rank decodes only its own shard."""
import threading

import numpy as np
import pytest
import torch
from helpers import assert_same_batches

from viewsplit.data import DataConfig, decoded, load_dataset
from viewsplit.data.decoded import DecodedView
from viewsplit.data.ondisk import OnDiskDataset
from viewsplit.data.preprocess import Standardizer

PIL = pytest.importorskip("PIL.Image")


def _write_coil(folder, n_objects, rgb):
    """72 poses per object of random pixels (20×20, resized to 64×64 on loading); pose i of object k."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(1, n_objects + 1):
        for i in range(72):
            arr = rng.integers(0, 256, (20, 20, 3) if rgb else (20, 20), dtype=np.uint8)
            PIL.fromarray(arr, "RGB" if rgb else "L").save(folder / f"obj{k}__{i}.png")


def _write_office(root, counts):
    """Random RGB images (of several sizes) per domain and class; short domains get jittered padding copies."""
    rng = np.random.default_rng(1)
    for d, dom in enumerate(("amazon", "dslr", "webcam")):
        for c, cls in enumerate(("back_pack", "bike", "cup")):
            folder = root / dom / "images" / cls
            folder.mkdir(parents=True)
            for i in range(counts[c][d]):
                arr = rng.integers(0, 256, (18 + 3 * i, 22, 3), dtype=np.uint8)
                PIL.fromarray(arr, "RGB").save(folder / f"frame_{i:04d}.jpg", quality=90)


def _same_batches(a, b, size=8, **kw):
    assert_same_batches(a, b, size, float32=True, **kw)


CASES = {
    "coil20": lambda root: (_write_coil(root, 3, rgb=False), dict(name="coil20", root=str(root))),
    "coil100": lambda root: (_write_coil(root, 2, rgb=True), dict(name="coil100", root=str(root), split="stratified")),
    "office31": lambda root: (_write_office(root, [(3, 1, 2), (1, 2, 1), (2, 2, 2)]),
                              dict(name="office31", root=str(root), seed=3)),
}


@pytest.mark.parametrize("case", CASES)
def test_streamed_image_folders_equal_the_eager_path(tmp_path, case):
    _, cfg = CASES[case](tmp_path / "data")
    eager = load_dataset(DataConfig(**cfg, stream=False, cache=False, missing_rate=0.2))
    lazy = load_dataset(DataConfig(**cfg, stream=True, missing_rate=0.2))
    assert isinstance(lazy.train, OnDiskDataset) and not isinstance(eager.train, OnDiskDataset)
    assert all(isinstance(v, DecodedView) for v in lazy.train.views)
    assert lazy.info["storage"] == "image files decoded per batch, streamed"
    assert eager.info["storage"] == "decoded into memory"
    assert lazy.train.view_shapes == eager.train.view_shapes and len(lazy.test) == len(eager.test)
    for split in ("train", "test"):
        a, b = getattr(eager, split), getattr(lazy, split)
        _same_batches(a, b)
        for rank in (0, 1):
            _same_batches(a, b, 2, shuffle=True, seed=4, epoch=1, rank=rank, world_size=2)
    # the model's standardisation (data.standardize=all: per channel on uint8/255) fits and applies alike
    pre = [Standardizer(eager.train.view_shapes).fit(ds, "all", batch_size=16) for ds in (eager.train, lazy.train)]
    assert all(torch.equal(x, y) for x, y in zip(pre[0].state_dict().values(), pre[1].state_dict().values()))
    _same_batches(pre[0].transform(eager.test), pre[1].transform(lazy.test))


def test_a_rank_decodes_only_its_shard_in_the_prefetch_thread(tmp_path, monkeypatch):
    _, cfg = CASES["coil20"](tmp_path / "data")
    lazy = load_dataset(DataConfig(**cfg, stream=True))
    calls = []
    real = decoded.decode

    def spy(paths, channels, size):
        calls.append((threading.current_thread().name, [p.name for p in paths]))
        return real(paths, channels, size)

    monkeypatch.setattr(decoded, "decode", spy)
    view = lazy.train.views[0]
    shard = torch.cat([b.index for b in lazy.train.batches(8, shuffle=True, seed=1, rank=1, world_size=2)])
    assert {t for t, _ in calls} == {"viewsplit-prefetch"}            # decoded ahead, not by the training loop
    assert all(len(names) <= 8 for _, names in calls)                   # one batch at a time
    wanted = {view.files[f].name for f in view.file_of[view.rows[shard.numpy()]]}
    got = {n for _, names in calls[::3] for n in names}                 # a batch decodes view 0, 1, 2 in turn
    assert got == wanted and len(shard) == -(-len(lazy.train) // 2)     # rank 1's rows only, all of them


def test_auto_streams_above_the_threshold_and_trains_alike(tmp_path):
    from viewsplit.config import load_config
    from viewsplit.engine.run import train

    _, cfg = CASES["coil20"](tmp_path / "data")
    assert isinstance(load_dataset(DataConfig(**cfg, stream_above_mb=0)).train, OnDiskDataset)
    assert not isinstance(load_dataset(DataConfig(**cfg)).train, OnDiskDataset)
    raw = {"method": "autoencoder", "data": {**cfg, "cache": False},
           "model": {"code_dim": 3, "backbone": {"channels": [4, 4], "conv_norm": "none"}},
           "stages": {"train": {"epochs": 1, "batch_size": 16}}, "train": {"threads": 1, "progress": "never"}}
    states = [train(load_config(base=raw, overrides=[f"data.stream={s}"]), tmp_path / s).method.state_dict()
              for s in ("false", "true")]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])

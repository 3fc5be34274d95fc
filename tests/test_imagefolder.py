"""A user's own multi-view image folders (``data.name=imagefolder``): samples matched by ``<class>/<stem>`` across
view folders, labels from sorted class names, unmatched files as missing views, streamed batches equal to eager ones,
split.csv, errors naming the folder or file, ``convert`` and an end-to-end ``viewsplit run``."""
import json

import numpy as np
import pytest
import torch
import yaml
from helpers import assert_same_batches

from viewsplit.cli import main
from viewsplit.data import DataConfig, load_dataset
from viewsplit.data.decoded import DecodedView
from viewsplit.data.ondisk import OnDiskDataset, open_folder
from viewsplit.data.preprocess import Standardizer
from viewsplit.errors import DataError

PIL = pytest.importorskip("PIL.Image")
SIZE = 8   # written at 8×8 and loaded at image_size=8: the resize is the identity, so pixels are known answers

#: view → files (``<class>/<name>``); rgb and depth share cat/a, cat/b, dog/c; cat/only_rgb and dog/d.jpg are
#: rgb-only; dog/e and the class bird exist in depth only
LAYOUT = {
    "rgb": ["cat/a.png", "cat/b.png", "cat/only_rgb.png", "dog/c.png", "dog/d.jpg", "dog/sub/f.png"],
    "depth": ["bird/x.png", "cat/a.bmp", "cat/b.png", "dog/c.png", "dog/e.png", "dog/sub/f.png"],
}
KEYS = ["bird/x", "cat/a", "cat/b", "cat/only_rgb", "dog/c", "dog/d", "dog/e", "dog/sub/f"]


def _write(root, layout=LAYOUT):
    """Seeded random pixels per (view, file); rgb as RGB, depth as grey. Returns {(view, key): (C, H, W) uint8}."""
    truth = {}
    for view, files in layout.items():
        rng = np.random.default_rng(len(view))
        for f in files:
            path = root / view / f
            path.parent.mkdir(parents=True, exist_ok=True)
            arr = rng.integers(0, 256, (SIZE, SIZE, 3) if view == "rgb" else (SIZE, SIZE), dtype=np.uint8)
            if path.suffix == ".jpg":   # lossy: the truth is what PIL decodes
                arr = np.full_like(arr, 77)
            PIL.fromarray(arr).save(path)
            key = f.rsplit(".", 1)[0]
            truth[view, key] = torch.from_numpy(arr.reshape(SIZE, SIZE, -1)).permute(2, 0, 1)
    (root / "notes.txt").write_text("not a view folder: files beside the views are ignored")
    (root / "rgb" / "cat" / "README").write_text("not an image: skipped")
    return truth


def _split_csv(root, test_keys):
    rows = ["sample,split"] + [f"{k},{'test' if k in test_keys else 'train'}" for k in KEYS]
    (root / "split.csv").write_text("\n".join(rows) + "\n")


def _load(root, **kw):
    return load_dataset(DataConfig(name="imagefolder", path=str(root), image_size=SIZE, cache=False, **kw))


def _check_rows(ds, keys, truth, views):
    """Row i of ``ds`` is sample ``keys[i]``: each view holds its file's pixels, or zeros and mask False."""
    assert len(ds) == len(keys)
    for v, view in enumerate(views):
        x = ds.views[v] if isinstance(ds.views[v], torch.Tensor) else ds.views[v].read_all()
        for i, key in enumerate(keys):
            want = truth.get((view, key))
            assert bool(ds.mask[i, v]) == (want is not None), (view, key)
            assert torch.equal(x[i], torch.zeros_like(x[i]) if want is None else want), (view, key)


@pytest.mark.parametrize("stream", [False, True])
def test_samples_match_by_stem_with_labels_and_missing_views(tmp_path, stream):
    truth = _write(tmp_path)
    _split_csv(tmp_path, {"cat/b", "dog/e"})
    splits = _load(tmp_path, stream=stream)
    assert isinstance(splits.train, OnDiskDataset) == stream
    assert splits.train.view_names == ["depth", "rgb"]                           # sorted view folder names
    assert splits.train.view_shapes == [(1, SIZE, SIZE), (3, SIZE, SIZE)]       # channels from each first image
    train_keys = [k for k in KEYS if k not in ("cat/b", "dog/e")]
    _check_rows(splits.train, train_keys, truth, ["depth", "rgb"])
    _check_rows(splits.test, ["cat/b", "dog/e"], truth, ["depth", "rgb"])
    classes = ["bird", "cat", "dog"]                                             # sorted, bird from depth only
    assert splits.train.labels.tolist() == [classes.index(k.split("/")[0]) for k in train_keys]
    assert splits.test.labels.tolist() == [1, 2]
    info = splits.info
    assert info["class_names"] == classes and info["split"] == f"given by {tmp_path / 'split.csv'}"
    assert info["view_samples"] == {"depth": 6, "rgb": 6} and info["complete_samples"] == 4
    assert info["channels"] == [1, 3] and info["image_size"] == SIZE
    # data.views chooses the order; data.channels overrides the images' modes
    again = _load(tmp_path, stream=stream, views=["rgb", "depth"], channels=[3, 3])
    assert again.train.view_names == ["rgb", "depth"] and again.train.view_shapes == [(3, SIZE, SIZE)] * 2
    grey_as_rgb = {("depth", k): t.expand(3, -1, -1) for (v, k), t in truth.items() if v == "depth"}
    _check_rows(again.train, train_keys, {**truth, **grey_as_rgb}, ["rgb", "depth"])


def test_resize_and_the_seeded_stratified_split_of_user_data(tmp_path):
    from viewsplit.data.image_ops import resize
    from viewsplit.data.multiview import stratified_split

    truth = _write(tmp_path)
    splits = load_dataset(DataConfig(name="imagefolder", path=str(tmp_path), image_size=5, seed=3, test_fraction=0.3,
                                     cache=False))
    labels = np.array([["bird", "cat", "dog"].index(k.split("/")[0]) for k in KEYS])
    tr, te = stratified_split(labels, 0.3, 3)
    assert splits.info["split"] == "stratified" and splits.info["split_seed"] == 3
    small = {vk: resize(t[None], 5, antialias=True)[0] for vk, t in truth.items()}
    _check_rows(splits.train, [KEYS[i] for i in tr], small, ["depth", "rgb"])
    _check_rows(splits.test, [KEYS[i] for i in te], small, ["depth", "rgb"])


def _same_batches(a, b, size=3, **kw):
    assert_same_batches(a, b, size, float32=True, **kw)


def test_streamed_batches_equal_eager_ones(tmp_path):
    _write(tmp_path)
    eager = _load(tmp_path, stream=False, test_fraction=0.3)
    lazy = _load(tmp_path, test_fraction=0.3, stream_above_mb=0)
    assert all(isinstance(v, DecodedView) for v in lazy.train.views) and not isinstance(eager.train, OnDiskDataset)
    assert lazy.info["storage"] == "image files decoded per batch, streamed"
    assert eager.info["storage"] == "decoded into memory"
    for split in ("train", "test"):
        a, b = getattr(eager, split), getattr(lazy, split)
        _same_batches(a, b)
        for rank in (0, 1):
            _same_batches(a, b, 2, shuffle=True, seed=4, epoch=1, rank=rank, world_size=2)
    # per-channel standardisation is fitted on present samples only, alike on both paths
    pre = [Standardizer(eager.train.view_shapes).fit(ds, "all", batch_size=4) for ds in (eager.train, lazy.train)]
    assert all(torch.equal(x, y) for x, y in zip(pre[0].state_dict().values(), pre[1].state_dict().values()))
    x, present = eager.train.views[0].float() / 255, eager.train.mask[:, 0]
    assert not present.all()                                               # zeros stand in for absent images
    mean = pre[0].stats(0)[0].flatten()
    assert torch.allclose(mean, x[present].mean((0, 2, 3))) and not torch.allclose(mean, x.mean((0, 2, 3)))
    _same_batches(pre[0].transform(eager.test), pre[1].transform(lazy.test))


@pytest.mark.parametrize("stream", [False, True])
def test_a_missing_rate_that_empties_a_sample_is_refused_alike(tmp_path, stream):
    # data.missing_rate draws its mask over the folder's own: a sample left with no view is an error on both paths
    _write(tmp_path)
    with pytest.raises(DataError, match=r"mask rows with no view present"):
        _load(tmp_path, stream=stream, missing_rate=0.9, test_fraction=0.3)


def _make(tmp_path, files):
    for f, data in files.items():
        path = tmp_path / f
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            PIL.fromarray(data).save(path)
    return tmp_path


GREY = np.zeros((4, 4), np.uint8)
ERRORS = {
    "no path": ({}, {"path": None}, r"data.path: the imagefolder data set needs data.path=DIR"),
    "missing dir": ({}, {"path": "nowhere"}, r"nowhere: folder not found \(data.path of imagefolder\)"),
    "no view folders": ({"a.png": GREY}, {}, r"at least 2 view folders .*found none"),
    "one view folder": ({"rgb/c/a.png": GREY}, {}, r"at least 2 view folders .*found \['rgb'\]"),
    "view without images": ({"rgb/c/a.png": GREY, "depth/c/a.txt": b"x"}, {}, r"/depth: no images"),
    "loose image": ({"rgb/c/a.png": GREY, "depth/a.png": GREY}, {}, r"/depth: image 'a.png' is not in a class"),
    "undecodable": ({"rgb/c/a.png": GREY, "depth/c/a.png": GREY, "depth/c/b.png": b"not a png"}, {},
                    r"depth/c/b.png: cannot decode image"),
    "undecodable first": ({"rgb/c/a.png": GREY, "depth/c/a.png": b"not a png"}, {},
                          r"depth/c/a.png: cannot decode image"),
    "16-bit": ({"rgb/c/a.png": GREY, "depth/c/a.png": np.full((4, 4), 1000, np.uint16)}, {},
               r"depth/c/a.png: a I;16 image \(more than 8 bits per channel\)"),
    "nothing shared": ({"rgb/c/a.png": GREY, "depth/c/b.png": GREY}, {}, r"no sample has a file in two views"),
    "duplicate stem": ({"rgb/c/a.png": GREY, "rgb/c/a.jpg": GREY, "depth/c/a.png": GREY}, {},
                       r"'a.jpg' and 'a.png' in .*/rgb/c are the same sample 'c/a'"),
    "unknown view": ({"rgb/c/a.png": GREY, "depth/c/a.png": GREY}, {"views": ["rgb", "ir"]},
                     r"data.views: \['ir'\] must name distinct sub-folders"),
    "channels": ({"rgb/c/a.png": GREY, "depth/c/a.png": GREY}, {"channels": [1, 1, 3]},
                 r"data.channels: 3 values for 2 views"),
    "split unknown": ({"rgb/c/a.png": GREY, "depth/c/a.png": GREY, "split.csv": b"c/a,train\nc/z,test\n"}, {},
                      r"split.csv, line 2: 'c/z' is not a sample"),
    "split unlisted": ({"rgb/c/a.png": GREY, "rgb/c/b.png": GREY, "depth/c/a.png": GREY,
                        "split.csv": b"c/a.png,train\n"}, {}, r"split.csv: no train/test row for 1 samples .*c/b"),
    "split value": ({"rgb/c/a.png": GREY, "depth/c/a.png": GREY, "split.csv": b"c/a,train\nc/a,val\n"}, {},
                    r"split.csv, line 2: expected '<class>/<stem>,train'"),
    "split twice": ({"rgb/c/a.png": GREY, "depth/c/a.png": GREY, "split.csv": b"c/a,train\nc/a,test\n"}, {},
                    r"split.csv, line 2: sample 'c/a' is listed twice"),
    "split no test": ({"rgb/c/a.png": GREY, "depth/c/a.png": GREY, "split.csv": b"c/a,train\n"}, {},
                      r"split.csv: puts no sample in test"),
}


@pytest.mark.parametrize("case", ERRORS)
def test_bad_folders_name_the_folder_or_file(tmp_path, monkeypatch, case):
    files, over, match = ERRORS[case]
    _make(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    cfg = {"path": str(tmp_path), "stream": False, **over}
    with pytest.raises(DataError, match=match):
        load_dataset(DataConfig(name="imagefolder", cache=False, **cfg))


def test_a_bad_file_found_while_streaming_names_it(tmp_path):
    _make(tmp_path, {"rgb/c/a.png": GREY, "depth/c/a.png": GREY, "rgb/c/b.png": GREY, "depth/c/b.png": b"broken",
                     "split.csv": b"c/a,train\nc/b,test\n"})
    splits = _load(tmp_path, stream=True)
    assert len(list(splits.train.batches(1))) == 1
    with pytest.raises(DataError, match=r"depth/c/b.png: cannot decode image"):
        list(splits.test.batches(1))


def test_convert_writes_the_folder_format_from_streamed_images(tmp_path, capsys):
    _write(tmp_path / "img")
    out = tmp_path / "npy"
    assert main(["convert", "--dataset", "imagefolder", f"data.path={tmp_path / 'img'}", f"data.image_size={SIZE}",
                 "data.stream=true", "--out", str(out), "--chunk", "3"]) == 0
    folder = open_folder(out)
    eager = _load(tmp_path / "img", stream=False)
    for v in range(2):
        want = torch.cat([eager.train.views[v], eager.test.views[v]])
        assert torch.equal(torch.from_numpy(np.array(folder.views[v][0])), want)
    assert np.array_equal(folder.mask, torch.cat([eager.train.mask, eager.test.mask]).numpy())
    assert np.array_equal(folder.labels, torch.cat([eager.train.labels, eager.test.labels]).numpy())


def test_listed_by_viewsplit_datasets(capsys):
    assert main(["datasets"]) == 0
    assert "| imagefolder |" in capsys.readouterr().out


def test_viewsplit_run_end_to_end(tmp_path, capsys):
    # 3 classes × 8 samples; a few samples lack their depth image or their rgb image
    layout = {"rgb": [f"{c}/{i}.png" for c in ("bird", "cat", "dog") for i in range(8) if i != 7],
              "depth": [f"{c}/{i}.png" for c in ("bird", "cat", "dog") for i in range(8) if (c, i) != ("cat", 0)]}
    _write(tmp_path / "img", layout)
    cfg = {"method": "autoencoder", "data": {"name": "imagefolder", "path": str(tmp_path / "img"), "image_size": SIZE,
                                             "test_fraction": 0.25, "standardize": "all"},
           "model": {"code_dim": 2, "backbone": {"channels": [4, 4], "conv_norm": "none"}},
           "stages": {"train": {"epochs": 2, "batch_size": 6}}, "train": {"threads": 1, "progress": "never"},
           "eval": {"kmeans_seeds": 1, "probes": ["knn"], "knn_k": 1, "figures": False, "redundancy": False}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    data = metrics["protocol"]["data"]
    assert data["class_names"] == ["bird", "cat", "dog"] and data["view_samples"] == {"depth": 23, "rgb": 21}
    assert (data["train_samples"], data["test_samples"], data["complete_samples"]) == (18, 6, 20)
    assert 0 <= metrics["clustering"]["C"]["acc"]["mean"] <= 1
    bad_path = f"data.path={tmp_path / 'none'}"
    assert main(["run", str(tmp_path / "cfg.yaml"), bad_path, "--out", str(tmp_path / "r2")]) == 2
    assert "none: folder not found" in capsys.readouterr().err

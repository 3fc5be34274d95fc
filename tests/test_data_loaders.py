"""Every built-in loader: real files where this machine has them, synthetic files laid out like the real ones
otherwise."""
import gzip

import numpy as np
import pytest
import torch
from conftest import FMNIST_DIR, needs_fmnist
from helpers import write_idx, write_mnist_like
from sklearn.preprocessing import StandardScaler

from viewsplit.data import DataConfig, DataError, load_dataset, stratified_split
from viewsplit.data.edge_mnist import edge_views, read_idx
from viewsplit.data.handwritten import VIEW_DIMS, VIEW_NAMES, load_raw, read_mfeat_csvs
from viewsplit.data.image_ops import edge_map
from viewsplit.data.images import coil_groups
from viewsplit.data.synthetic import generate
from viewsplit.eval.metrics import cluster_scores, kmeans_protocol

PIL = pytest.importorskip("PIL.Image")


# ---------------------------------------------------------------------------- handwritten
def test_handwritten_shipped_copy():
    views, labels = load_raw()
    assert [v.shape for v in views] == [(2000, d) for d in VIEW_DIMS]
    assert np.bincount(labels).tolist() == [200] * 10 and labels[0] == 0 and labels[-1] == 9
    s = load_dataset(DataConfig(name="handwritten"))
    assert (len(s.train), len(s.test), s.cluster_on) == (1600, 400, "all")
    assert s.train.view_names == VIEW_NAMES and np.bincount(s.test.labels.numpy()).tolist() == [40] * 10
    # the loader gives the raw features; standardisation belongs to the model (test_estimators.py)
    tr, _ = stratified_split(labels, 0.2, 0)
    assert np.array_equal(s.train.views[1].numpy(), views[1][tr].astype(np.float32))


def test_handwritten_anchor_baselines():
    """docs/datasets.md#handwritten-raw-baselines: raw concatenated k-means and kNN-graph spectral clustering on all
    2000 samples."""
    from sklearn.cluster import SpectralClustering

    views, y = load_raw()
    x = np.concatenate([StandardScaler().fit_transform(v) for v in views], 1)
    km = kmeans_protocol(x, y, 10, seeds=3)
    assert km["acc"]["mean"] == pytest.approx(0.8245, abs=0.01)
    assert km["nmi"]["mean"] == pytest.approx(0.8151, abs=0.01)
    pred = SpectralClustering(10, affinity="nearest_neighbors", n_neighbors=10, random_state=0).fit_predict(x)
    sc = cluster_scores(y, pred)
    assert (round(sc["acc"], 3), round(sc["nmi"], 3), round(sc["ari"], 3)) == (0.975, 0.942, 0.945)


def test_mfeat_csv_reader_and_label_mismatch(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 4).astype(float)
    for name, d in zip(VIEW_NAMES, VIEW_DIMS):
        arr = np.column_stack([rng.normal(size=(12, d)), labels])
        header = ",".join(str(i) for i in range(d)) + ",0"
        np.savetxt(tmp_path / f"mfeat-{name}.csv", arr, delimiter=",", header=header, comments="")
    views, y = read_mfeat_csvs(tmp_path)
    assert [v.shape for v in views] == [(12, d) for d in VIEW_DIMS] and y.tolist() == labels.astype(int).tolist()
    bad = np.column_stack([rng.normal(size=(12, 64)), labels[::-1]])
    np.savetxt(tmp_path / "mfeat-kar.csv", bad, delimiter=",", header="h" * 3, comments="")
    with pytest.raises(DataError, match=r"mfeat-kar.csv: labels disagree"):
        read_mfeat_csvs(tmp_path)
    (tmp_path / "mfeat-zer.csv").unlink()
    with pytest.raises(DataError, match=r"mfeat-(kar|zer).csv"):
        read_mfeat_csvs(tmp_path)


# ---------------------------------------------------------------------------- IDX / edge views
def test_edge_test_vectors():
    img = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    img[0, 0, 10, 10] = 255
    e = edge_map(img)[0, 0].int()
    assert e[9:12, 9:12].tolist() == [[255, 255, 255], [255, 0, 255], [255, 255, 255]] and e.sum() == 8 * 255
    img = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    img[0, 0, 0, 0] = 255
    e = edge_map(img)[0, 0].int()
    assert e[0, 1] == e[1, 0] == e[1, 1] == 255 and e[0, 0] == 0 and e.sum() == 3 * 255
    assert edge_map(torch.full((1, 1, 28, 28), 77, dtype=torch.uint8)).sum() == 0
    img = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    img[0, 0, 5:8, 5:8] = 100
    img[0, 0, 6, 6] = 255
    assert edge_map(img)[0, 0, 4:9, 4:9].tolist() == [
        [100, 100, 100, 100, 100], [100, 155, 155, 155, 100], [100, 155, 0, 155, 100],
        [100, 155, 155, 155, 100], [100, 100, 100, 100, 100]]
    a, b = edge_views(np.zeros((2, 28, 28), np.uint8))
    assert a.shape == b.shape == (2, 1, 32, 32) and a.sum() == 0 and b.sum() == 0


@pytest.mark.parametrize("gz", [True, False])
def test_edge_mnist_loader_on_synthetic_idx(tmp_path, gz):
    write_mnist_like(tmp_path, gz=gz)
    s = load_dataset(DataConfig(name="edge_mnist", root=str(tmp_path)))
    assert (len(s.train), len(s.test)) == (20, 10) and s.train.view_names == ["image", "edge"]
    assert s.train.labels.tolist() == [i % 10 for i in range(20)] and s.cluster_on == "test"
    b = next(s.train.batches(20))
    assert all(v.shape == (20, 1, 32, 32) and v.min() >= 0 and v.max() <= 1 for v in b.views)
    # the edge of a single bright pixel is a ring around it: its mass exceeds the image's
    assert (b.views[1].sum((1, 2, 3)) > b.views[0].sum((1, 2, 3))).all()
    # the second load comes from the cache and is identical
    s2 = load_dataset(DataConfig(name="edge_mnist", root=str(tmp_path)))
    assert torch.equal(s2.train.views[1], s.train.views[1])


def test_idx_reader_rejects_bad_files(tmp_path):
    p = write_idx(tmp_path / "ok", np.zeros((3, 4, 4)), gz=False)
    assert read_idx(p).shape == (3, 4, 4)
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x03" + bytes(12))
    with pytest.raises(DataError, match=r"magic.*bad magic number"):
        read_idx(tmp_path / "magic")
    (tmp_path / "short").write_bytes(p.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"short: IDX length"):
        read_idx(tmp_path / "short")
    with gzip.open(tmp_path / "trunc.gz", "wb") as fh:
        fh.write(p.read_bytes())
    (tmp_path / "cut.gz").write_bytes((tmp_path / "trunc.gz").read_bytes()[:20])
    with pytest.raises(DataError, match=r"cut.gz"):
        read_idx(tmp_path / "cut.gz")


def test_missing_files_say_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("VIEWSPLIT_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError, match=r"(?s)Looked in:.*nowhere.*env/mnist.*data.root"):
        load_dataset(DataConfig(name="edge_mnist", root=str(tmp_path / "nowhere")))
    if not FMNIST_DIR.exists():
        with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist"):
            load_dataset(DataConfig(name="edge_fmnist", root=str(tmp_path / "nowhere")))


@needs_fmnist
def test_real_fashion_mnist():
    y_train = read_idx(FMNIST_DIR / "train-labels-idx1-ubyte.gz")
    y_test = read_idx(FMNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    x_train = read_idx(FMNIST_DIR / "train-images-idx3-ubyte.gz")
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_test[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert x_train.mean() == pytest.approx(72.9404, abs=1e-4) and np.bincount(y_train).tolist() == [6000] * 10
    s = load_dataset(DataConfig(name="edge_fmnist", test_limit=100, train_limit=100))
    assert s.train.view_shapes == [(1, 32, 32), (1, 32, 32)] and len(s.test) == 100


# ---------------------------------------------------------------------------- COIL
def _write_coil(folder, n_objects, rgb, size=16):
    folder.mkdir(parents=True)
    for k in range(1, n_objects + 1):
        for i in range(72):
            name = f"obj{k}__{5 * i if rgb else i}.png"
            if rgb:
                arr = np.zeros((size, size, 3), np.uint8)
                arr[..., 0], arr[..., 1] = i, k
                PIL.fromarray(arr, "RGB").save(folder / name)
            else:
                PIL.fromarray(np.full((size, size), i, np.uint8), "L").save(folder / name)


@pytest.mark.parametrize("name, rgb", [("coil20", False), ("coil100", True)])
def test_coil_loaders_on_synthetic_pngs(tmp_path, name, rgb):
    _write_coil(tmp_path / "imgs", 3, rgb)
    cfg = DataConfig(name=name, root=str(tmp_path / "imgs"), seed=5)
    s = load_dataset(cfg)
    n = 3 * 24
    assert len(s.train) + len(s.test) == n and len(s.test) == int(np.ceil(0.2 * n))
    c = 3 if rgb else 1
    full = s.all
    assert full.view_shapes == [(c, 64, 64)] * 3
    pose = torch.stack([v[:, 0, 0, 0] for v in full.views], 1).long()   # pixel value = pose index
    if rgb:
        assert torch.equal(full.views[0][:, 1, 0, 0].long(), full.labels + 1)  # green channel = object
    for k in range(3):
        rows = pose[full.labels == k]
        assert sorted(rows.flatten().tolist()) == list(range(72))            # disjoint groups covering 72 poses
    again = load_dataset(cfg).all
    assert torch.equal(again.views[2], full.views[2])
    groups = coil_groups(3, 3, 5, "random")
    assert groups.shape == (3, 24, 3)
    inter = load_dataset(DataConfig(name=name, root=str(tmp_path / "imgs"), grouping="interleaved", split="stratified"))
    p = torch.stack([v[:, 0, 0, 0] for v in inter.all.views], 1).long()
    assert ((p[:, 1] - p[:, 0]) == 1).all() and ((p[:, 2] - p[:, 0]) == 2).all()


def test_coil_rejects_incomplete_objects(tmp_path):
    _write_coil(tmp_path / "imgs", 1, False)
    (tmp_path / "imgs" / "obj1__7.png").unlink()
    with pytest.raises(DataError, match="object 1 has 71 pose images"):
        load_dataset(DataConfig(name="coil20", root=str(tmp_path / "imgs")))


# ---------------------------------------------------------------------------- Office-31
def _write_office(root, counts):
    for d, dom in enumerate(("amazon", "dslr", "webcam")):
        for c, cls in enumerate(("back_pack", "bike")):
            folder = root / dom / "images" / cls
            folder.mkdir(parents=True)
            for i in range(counts[c][d]):
                arr = np.zeros((20, 20, 3), np.uint8)
                arr[..., 0], arr[..., 1], arr[..., 2] = 40 * d + 10, 30 * i + 20, 100 + 50 * c
                PIL.fromarray(arr, "RGB").save(folder / f"frame_{i:04d}.png")


def test_office31_alignment_on_synthetic_tree(tmp_path):
    from viewsplit.data.images import office_files, office_triplets

    _write_office(tmp_path, [(3, 1, 2), (1, 2, 1)])
    before = sorted(tmp_path.rglob("*"))
    cfg = DataConfig(name="office31", root=str(tmp_path), split="stratified", test_fraction=0.4)
    full = load_dataset(cfg).all
    assert len(full) == 5 and np.bincount(full.labels.numpy()).tolist() == [3, 2]
    assert sorted(tmp_path.rglob("*")) == before   # nothing is written into the data folder
    def colours(d: int, cls: int) -> set[tuple]:
        return {tuple(v[:, 0, 0].tolist()) for v in full.views[d][full.labels == cls]}

    # class 0: amazon has the most images, so its 3 originals appear unchanged
    assert colours(0, 0) == {(10, 20, 100), (10, 50, 100), (10, 80, 100)}
    # dslr's single file appears once as itself and twice as differently jittered copies
    dslr = colours(1, 0)
    assert (50, 20, 100) in dslr and len(dslr) == 3
    trip = office_triplets(office_files(tmp_path))
    assert [c for c, _ in trip] == [0, 0, 0, 1, 1]
    assert [t for _, t in trip[0][1]] == [-1, -1, -1] and [t for _, t in trip[2][1]] == [-1, 1, 0]
    assert trip[2][1][1][0].name == "frame_0000.png" and trip[2][1][2][0].name == "frame_0000.png"
    assert torch.equal(load_dataset(cfg).all.views[1], full.views[1])   # seeded jitter is reproducible
    s = load_dataset(DataConfig(name="office31", root=str(tmp_path)))
    assert (len(s.train), len(s.test)) == (4, 1)    # reference split: ceil(0.2 n) test samples


# ---------------------------------------------------------------------------- user data, synthetic
def test_npz_loader(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, view0=rng.normal(size=(30, 4)), view1=rng.normal(size=(30, 1, 8, 8)), labels=np.arange(30) % 3 + 5)
    s = load_dataset(DataConfig(name="npz", path=str(path)))
    assert (len(s.train), len(s.test)) == (24, 6) and s.train.view_shapes == [(4,), (1, 8, 8)]
    assert set(s.all.labels.tolist()) == {0, 1, 2}   # class ids 5,6,7 are mapped to 0..2
    np.savez(path, view0=rng.normal(size=(30, 4)), view1=rng.normal(size=(30, 2)),
             train_index=np.arange(20), test_index=np.arange(20, 30))
    s = load_dataset(DataConfig(name="npz", path=str(path)))
    assert (len(s.train), len(s.test), s.train.labels) == (20, 10, None)


@pytest.mark.parametrize("arrays, match", [
    (dict(view0=np.zeros((4, 2)), view2=np.zeros((4, 2))), r"mine.npz: view arrays must be named view0, view1"),
    (dict(view0=np.zeros((4, 2)), view1=np.zeros((4, 2)), extra=np.zeros(4)),
     r"mine.npz: unknown arrays \['extra'\]"),
    (dict(view0=np.zeros((4, 2)), view1=np.zeros((4, 2)), labels=np.array([0.5, 1, 2, 3])),
     r"array 'labels'.*integers"),
    (dict(view0=np.zeros((4, 2)), view1=np.zeros((5, 2))), r"view 1 \('view1'\): has 5 samples"),
    (dict(view0=np.zeros((4, 2)), view1=np.array([[0, 1], [0, np.inf], [0, 0], [1, 1]])),
     r"mine.npz: array 'view1'.*NaN or Inf"),
    (dict(view0=np.zeros((4, 2)), view1=np.zeros((4, 2)), train_index=np.arange(2)),
     r"both train_index and test_index"),
])
def test_npz_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "mine.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "mine.npz")))


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.npz: file not found"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "nope.npz")))


def test_csv_loader(tmp_path):
    rng = np.random.default_rng(0)
    np.savetxt(tmp_path / "a.csv", rng.normal(size=(20, 3)), delimiter=",", header="x,y,z", comments="")
    np.savetxt(tmp_path / "b.csv", rng.normal(size=(20, 5)), delimiter=",")
    np.savetxt(tmp_path / "y.csv", np.arange(20) % 2, delimiter=",", fmt="%d")
    s = load_dataset(DataConfig(name="csv", views=[str(tmp_path / "a.csv"), str(tmp_path / "b.csv")],
                                labels=str(tmp_path / "y.csv")))
    assert s.train.view_names == ["a", "b"] and s.train.view_shapes == [(3,), (5,)] and len(s.all) == 20
    (tmp_path / "c.csv").write_text("1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"c.csv: line 2: 'oops' is not a number"):
        load_dataset(DataConfig(name="csv", views=[str(tmp_path / "a.csv"), str(tmp_path / "c.csv")]))


def test_synthetic_generator_has_known_factors():
    f = generate(n_samples=600, n_views=3, n_classes=3, seed=1)
    assert len(f.views) == 3 and f.views[0].shape == (600, 32) and f.shared.shape == (600, 2)
    assert [p.shape for p in f.specific] == [(600, 3)] * 3
    assert np.array_equal(generate(n_samples=600, n_views=3, n_classes=3, seed=1).views[2], f.views[2])
    # the class is a factor of its own: the shared continuous and the private factors know nothing of it
    from sklearn.linear_model import LogisticRegression, Ridge

    def acc(x):
        return LogisticRegression(max_iter=500).fit(x[:400], f.labels[:400]).score(x[400:], f.labels[400:])

    assert acc(f.shared) < 0.5 and acc(f.specific[0]) < 0.5 and acc(f.views[0]) > 0.9
    # each view carries its own private factor and not another view's
    def r2(x, y):
        return Ridge(1e-3).fit(x[:400], y[:400]).score(x[400:], y[400:])

    assert r2(f.views[1], f.specific[1]) > 0.5 and r2(f.views[1], f.specific[0]) < 0.05
    s = load_dataset(DataConfig(name="synthetic", n_samples=100, n_views=2))
    assert s.train.n_views == 2 and len(s.all) == 100
    assert set(s.train.factors) == {"shared", "view0", "view1"} and len(s.all.factors["view1"]) == 100

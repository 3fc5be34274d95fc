"""Features for new data from the command line: ``viewsplit encode`` / ``predict`` on CSVs, npz files and
on-disk folders (batch by batch into .npy files), their errors, and the .npy writer behind them."""
import numpy as np
import pytest
import torch
from helpers import two_views

from viewsplit.data import DataError


@pytest.fixture(autouse=True)
def _one_thread():
    """The fitted model and the encodings compared with it run on one thread (float results depend on it)."""
    torch.set_num_threads(1)


def test_encode_and_predict_commands_on_new_csv_data(tmp_path, fitted_mrdd, capsys):
    from viewsplit.cli import main

    Xs, _ = two_views()
    model = fitted_mrdd.save(tmp_path / "m.pt")
    for v, x in enumerate(Xs):
        np.savetxt(tmp_path / f"v{v}.csv", x, delimiter=",")
    mask = np.ones((len(Xs[0]), 2), dtype=int)
    mask[:5, 0] = 0
    np.savetxt(tmp_path / "mask.csv", mask, delimiter=",", fmt="%d")
    csvs = [str(tmp_path / "v0.csv"), str(tmp_path / "v1.csv")]
    assert main(["encode", str(model), "--data", *csvs, "--mask", str(tmp_path / "mask.csv"), "--representation",
                 "C,V_1", "--batch-size", "16", "--out", str(tmp_path / "out" / "f.npz")]) == 0
    feats = np.load(tmp_path / "out" / "f.npz")
    assert feats.files == ["C", "V_1"]
    want = fitted_mrdd.encode(Xs, mask=mask.astype(bool))
    assert np.abs(feats["C"] - want["C"]).max() <= 1e-5 and np.abs(feats["V_1"] - want["V_1"]).max() <= 1e-5
    assert not np.allclose(feats["C"][:5], fitted_mrdd.transform(Xs)[:5])  # the mask was applied
    assert main(["encode", str(model), "--data", *csvs, "--representation", "Z", "--out", str(tmp_path / "g.npz")]) == 2
    assert "--representation: ['Z'] not available" in capsys.readouterr().err
    np.savez(tmp_path / "new.npz", view0=Xs[0], view1=np.full_like(Xs[1], np.nan, dtype=float))
    assert main(["predict", str(model), "--views", "0", "--data", str(tmp_path / "new.npz"),
                 "--out", str(tmp_path / "p.npz")]) == 0
    pred = np.load(tmp_path / "p.npz")
    assert pred.files == ["pred_view1"]
    assert np.allclose(pred["pred_view1"], fitted_mrdd.predict_views(Xs, mask=np.array([[True, False]] * 160))[1])


def test_encode_streams_a_folder_into_npy_files_with_the_same_numbers(tmp_path, fitted_mrdd, capsys):
    """`viewsplit encode` reads an on-disk folder (mapped, in batches) and writes one float32 .npy per
    representation batch by batch: the same values as the npz route, the estimator's encode and encode_batches."""
    from viewsplit.cli import main
    from viewsplit.data.ondisk import folder_dataset, open_folder

    Xs, _ = two_views()
    Xs = [x.astype(np.float32) for x in Xs]   # the folder format stores float32 (convert casts the int view)
    mask = np.ones((len(Xs[0]), 2), dtype=bool)
    mask[:7, 1] = False
    model = fitted_mrdd.save(tmp_path / "m.pt")
    np.savez(tmp_path / "new.npz", view0=Xs[0], view1=Xs[1], mask=mask)
    assert main(["convert", "--npz", str(tmp_path / "new.npz"), "--out", str(tmp_path / "folder")]) == 0
    want = fitted_mrdd.encode(Xs, mask)
    runs = {"npz": ["--data", str(tmp_path / "new.npz"), "--out", str(tmp_path / "a.npz")],
            "folder→npz": ["--data", str(tmp_path / "folder"), "--out", str(tmp_path / "b.npz")],
            "npz→dir": ["--data", str(tmp_path / "new.npz"), "--out", str(tmp_path / "c")],
            "folder→dir": ["--data", str(tmp_path / "folder"), "--out", str(tmp_path / "d" / "e/")]}
    for name, args in runs.items():
        assert main(["encode", str(model), *args, "--batch-size", "33"]) == 0, name
        out = tmp_path / args[-1]
        got = dict(np.load(out)) if out.suffix == ".npz" else {p.stem: np.load(p) for p in out.glob("*.npy")}
        assert set(got) == set(want), name
        for k, v in want.items():
            assert got[k].dtype == np.float32, (name, k)
            assert np.array_equal(got[k], v), (name, k)   # the same values, exactly, whatever the route
        assert f"features of 160 samples (C 4, V_0 3, V_1 3, C+V_best 7, C+V_all 10): {out}" in capsys.readouterr().out
    assert not list((tmp_path / "d" / "e").glob("*.tmp"))
    # the Python API: encode and encode_batches take the folder's data set as well as arrays
    ds = folder_dataset(open_folder(tmp_path / "folder"), stream=True)
    parts = list(fitted_mrdd.encode_batches(ds))
    assert len(parts) == 1 and all(np.array_equal(parts[0][k], v) for k, v in want.items())  # eval.batch_size 1024
    assert all(np.array_equal(fitted_mrdd.encode(ds)[k], v) for k, v in want.items())
    # --mask overrides the folder's mask.npy; --representation picks and orders; a folder's files are replaced
    np.save(tmp_path / "all.npy", np.ones((160, 2), dtype=bool))
    assert main(["encode", str(model), "--data", str(tmp_path / "folder"), "--mask", str(tmp_path / "all.npy"),
                 "--representation", "V_1,C", "--out", str(tmp_path / "c")]) == 0
    assert np.array_equal(np.load(tmp_path / "c" / "C.npy"), fitted_mrdd.encode(Xs)["C"])
    assert not np.array_equal(np.load(tmp_path / "c" / "C.npy"), want["C"])
    assert "(V_1 3, C 4)" in capsys.readouterr().out


def test_encode_errors_name_the_path(tmp_path, fitted_mrdd, capsys):
    from viewsplit.cli import main

    Xs, _ = two_views()
    model = str(fitted_mrdd.save(tmp_path / "m.pt"))
    np.savez(tmp_path / "new.npz", view0=Xs[0], view1=Xs[1])
    (tmp_path / "taken").write_text("x")
    (tmp_path / "bad").mkdir()
    np.save(tmp_path / "bad" / "view0.npy", np.zeros((5, 12), np.float32))
    np.save(tmp_path / "bad" / "view1.npy", np.zeros((4, 8), np.float32))
    (tmp_path / "wide").mkdir()
    for v, d in enumerate((12, 9)):
        np.save(tmp_path / "wide" / f"view{v}.npy", np.zeros((5, d), np.float32))
    data = ["--data", str(tmp_path / "new.npz")]
    cases = [([*data, "--out", str(tmp_path / "f.npy")], "f.npy: give an .npz file, or a folder"),
             ([*data, "--out", str(tmp_path / "taken")], "taken: give an .npz file, or a folder"),
             (["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")], "nowhere: no such folder or file"),
             (["--data", str(tmp_path / "bad"), "--out", str(tmp_path / "o")], "view1.npy: has 4 samples but"),
             (["--data", str(tmp_path / "wide"), "--out", str(tmp_path / "o")],
              "view 1: samples of shape (9,), the model was fitted on (8,)"),
             ([*data, "--representation", "Z", "--out", str(tmp_path / "o")], "--representation: ['Z'] not available")]
    for args, msg in cases:
        assert main(["encode", model, *args]) == 2, msg
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()   # nothing is created before the first batch is encoded


def test_npy_writer_appends_rows_and_never_leaves_a_partial_file(tmp_path):
    from viewsplit.data.convert import NpyWriter, write_npy_rows

    x = np.arange(60, dtype=np.float64).reshape(10, 2, 3)
    with NpyWriter(tmp_path / "x.npy", x.shape, np.float32) as w:
        for i in range(0, 10, 4):
            w.write(x[i: i + 4])
    got = np.load(tmp_path / "x.npy")
    assert got.dtype == np.float32 and np.array_equal(got, x)
    with pytest.raises(DataError, match=r"x.npy: wrote 4 rows, expected 10"), NpyWriter(tmp_path / "x.npy", x.shape,
                                                                                      np.float32) as w:
        w.write(x[:4])
    assert np.array_equal(np.load(tmp_path / "x.npy"), x) and not list(tmp_path.glob("*.tmp"))  # old file kept
    with pytest.raises(DataError, match=r"y.npy: a chunk has rows of shape \(3,\), expected \(2, 3\)"), \
            NpyWriter(tmp_path / "y.npy", x.shape, np.float32) as w:
        w.write(x[:2, 0])
    batches = [{"a": x[:6, 0], "b": x[:6, 1, :1]}, {"a": x[6:, 0], "b": x[6:, 1, :1]}]
    assert write_npy_rows(tmp_path / "out", 10, batches) == {"a": (10, 3), "b": (10, 1)}
    assert np.array_equal(np.load(tmp_path / "out" / "b.npy"), x[:, 1, :1])
    with pytest.raises(DataError, match=r"a batch holds arrays \['a'\], the first held \['a', 'b'\]"):
        write_npy_rows(tmp_path / "out2", 10, [batches[0], {"a": x[6:, 0]}])
    with pytest.raises(DataError, match=r"wrote \{'a': 6, 'b': 6\} rows, expected 10 each"):
        write_npy_rows(tmp_path / "out2", 10, batches[:1])
    assert not list((tmp_path / "out2").glob("*"))

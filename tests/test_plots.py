"""Pictures of a run (viewsplit/eval/plots.py, ``viewsplit plot``): the PNGs exist and are valid, the subsample
is seeded, the loss curves are the log's numbers, and a missing matplotlib is a one-line error."""
import json
import sys

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

from viewsplit.cli import main
from viewsplit.config import load_config
from viewsplit.engine.run import load_run, run_all
from viewsplit.errors import ConfigError, DataError, MissingDependencyError
from viewsplit.eval.evaluate import extract
from viewsplit.eval.plots import embed_2d, plot_loss_curves, read_loss_curves, subsample

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY = ["data.name=synthetic", "data.n_samples=120", "data.n_views=2", "data.view_dim=6", "train.progress=never",
        "train.threads=1", "stages.consistency.epochs=3", "stages.disentangle.epochs=2",
        "stages.consistency.batch_size=32", "stages.disentangle.batch_size=32", "eval.kmeans_seeds=1",
        "eval.probes=[logreg]", "eval.redundancy=false",
        "eval.raw_baselines=false", "eval.factors=false", "eval.figures=false"]


def assert_png(path) -> None:
    assert path.stat().st_size > 0 and path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) > 100


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished MRDD run on 96 + 24 synthetic samples; ``viewsplit run`` wrote its plots."""
    out = tmp_path_factory.mktemp("plots") / "mrdd"
    run_all(load_config(REPO / "configs/handwritten/mrdd.yaml", TINY), out)
    return out


def test_run_writes_a_map_per_code_and_the_loss_curves(run_dir):
    names = {p.name for p in (run_dir / "plots").iterdir()}
    assert names == {"embedding_C.png", "embedding_V_0.png", "embedding_V_1.png", "loss_curves.png", "embedding.npz"}
    for name in names - {"embedding.npz"}:
        assert_png(run_dir / "plots" / name)
    saved = np.load(run_dir / "plots" / "embedding.npz")
    assert saved["index"].tolist() == list(range(24))     # 24 test samples ≤ 2000: all of them, in order
    assert saved["C"].shape == (24, 2) and np.isfinite(saved["C"]).all()


def test_plot_command_subsample_is_seeded(run_dir, tmp_path, capsys):
    for folder, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert main(["plot", str(run_dir), "--out", str(tmp_path / folder), "--max-points", "10", "--seed", seed,
                     "--representations", "C"]) == 0
    out = capsys.readouterr().out
    assert f"plots: 2 PNGs and embedding.npz in {tmp_path / 'c'}" in out
    a, b, c = (np.load(tmp_path / f / "embedding.npz") for f in "abc")
    assert a.files == ["index", "C"]
    assert a["index"].tolist() == subsample(24, 10, 0).tolist() and len(set(a["index"])) == 10
    assert np.array_equal(a["index"], b["index"]) and np.array_equal(a["C"], b["C"])   # same seed, same picture
    assert not np.array_equal(a["index"], c["index"])
    assert_png(tmp_path / "a" / "embedding_C.png")
    assert_png(tmp_path / "a" / "loss_curves.png")
    # the map is t-SNE of the eval-mode codes (posterior means) of exactly those test samples
    run = load_run(run_dir)
    codes = extract(run.method, run.splits.test.subset(a["index"]), device=run.device)["C"]
    assert np.array_equal(embed_2d(codes, 0, "tsne")[0], a["C"])


def test_subsample_draws_without_replacement_from_a_seeded_generator():
    assert subsample(7, 2000, 0).tolist() == list(range(7))
    s = subsample(1000, 50, 3)
    assert len(s) == 50 == len(set(s.tolist())) and s.tolist() == sorted(s.tolist()) and s.max() < 1000
    assert s.tolist() == sorted(np.random.default_rng(3).choice(1000, 50, replace=False).tolist())
    assert s.tolist() == subsample(1000, 50, 3).tolist() != subsample(1000, 50, 4).tolist()
    with pytest.raises(ConfigError, match=r"max_points \(--max-points\): must be >= 1, got 0"):
        subsample(10, 0, 0)


def test_loss_curves_are_the_logged_numbers(run_dir):
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    curves = read_loss_curves(run_dir / "log.jsonl")
    assert list(curves) == ["consistency", "disentangle"]
    for stage, epochs in (("consistency", 3), ("disentangle", 2)):
        logged = [r for r in rows if r["kind"] == "epoch" and r["stage"] == stage]
        assert len(logged) == epochs
        terms = {k for k in logged[0] if k not in ("time", "kind", "stage", "epoch", "global_step", "lr",
                                                     "train_seconds", "warnings")}
        assert set(curves[stage]) == terms and any(t.endswith("objective") for t in terms)
        for term, (xs, ys) in curves[stage].items():
            assert xs == [1, 2, 3][:epochs] and ys == [r[term] for r in logged]


def test_loss_curves_known_answer_with_a_resumed_run(tmp_path):
    """The last row for a (stage, x) wins; error rows, bookkeeping keys and other kinds are not curves."""
    log = tmp_path / "log.jsonl"
    rows = [{"kind": "step", "stage": "a", "epoch": 0, "batch": 0, "global_step": 1, "lr": 0.1, "loss": 9.0},
            {"kind": "epoch", "stage": "a", "epoch": 0, "global_step": 2, "lr": 0.1, "loss": 3.0, "kl": 1.0,
             "train_seconds": 1.5},
            {"kind": "epoch", "stage": "a", "epoch": 1, "global_step": 4, "lr": 0.1, "loss": 2.0, "kl": 0.5},
            {"kind": "error", "stage": "a", "epoch": 2, "batch": 0, "term": "loss", "message": "nan"},
            {"kind": "epoch", "stage": "a", "epoch": 1, "global_step": 4, "lr": 0.1, "loss": 2.5, "kl": 0.25,
             "warnings": ["w"]},
            {"kind": "epoch", "stage": "b", "epoch": 0, "global_step": 6, "lr": 0.1, "loss": 1.0}]
    log.write_text("".join(json.dumps({"time": 0.0, **r}) + "\n" for r in rows))
    assert read_loss_curves(log) == {"a": {"loss": ([1, 2], [3.0, 2.5]), "kl": ([1, 2], [1.0, 0.25])},
                                     "b": {"loss": ([1], [1.0])}}
    assert read_loss_curves(log, "step") == {"a": {"loss": ([1], [9.0])}}
    assert_png(plot_loss_curves(read_loss_curves(log), tmp_path / "c.png"))
    with pytest.raises(ConfigError, match="x: must be one of epoch, step"):
        read_loss_curves(log, "batch")
    with pytest.raises(ConfigError, match=r"nope\.jsonl: no training log"):
        read_loss_curves(tmp_path / "nope.jsonl")
    log.write_text(log.read_text() + "{not json\n")
    with pytest.raises(DataError, match=r"log\.jsonl, line 7: not a JSON row"):
        read_loss_curves(log)
    log.write_text(json.dumps(rows[3]) + "\n")
    with pytest.raises(DataError, match="no epoch rows to plot"):
        read_loss_curves(log)


def test_collapsed_codes_map_to_the_origin_and_tiny_sets_are_refused():
    xy, how = embed_2d(np.ones((30, 4)))
    assert not xy.any() and how == "no map: every sample has the same code"
    xy, how = embed_2d(np.random.default_rng(0).normal(size=(30, 4)), embedding="tsne")
    assert xy.shape == (30, 2) and how == "t-SNE (perplexity 9.67)"
    with pytest.raises(DataError, match="needs at least 5 samples, got 4"):
        embed_2d(np.zeros((4, 2)))
    with pytest.raises(ConfigError, match="embedding: must be one of auto, tsne, umap"):
        embed_2d(np.zeros((9, 2)), embedding="pca")


def test_without_matplotlib_plot_is_a_one_line_error_and_run_skips_the_plots(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # `import matplotlib` now raises ImportError
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("viewsplit: error: plots need matplotlib, which is not installed: pip install 'viewsplit[plots]' "
                   "(or pip install matplotlib)")
    assert not (tmp_path / "p").exists()
    with pytest.raises(MissingDependencyError):
        plot_loss_curves({"a": {"loss": ([1], [1.0])}}, tmp_path / "c.png")
    over = [o.replace("epochs=3", "epochs=1").replace("epochs=2", "epochs=1") for o in TINY]
    assert main(["run", "handwritten/mrdd", *over, "--out", str(tmp_path / "r")]) == 0
    assert "viewsplit: plots skipped: matplotlib is not installed" in capsys.readouterr().err
    assert (tmp_path / "r" / "metrics.json").exists() and not (tmp_path / "r" / "plots").exists()


def test_eval_plots_false_writes_no_plots(tmp_path):
    over = [o.replace("epochs=3", "epochs=1").replace("epochs=2", "epochs=1") for o in TINY]
    run_all(load_config(REPO / "configs/handwritten/mrdd.yaml", [*over, "eval.plots=false"]), tmp_path / "r")
    assert (tmp_path / "r" / "metrics.json").exists() and not (tmp_path / "r" / "plots").exists()

"""A new user's first hour (issue 32, "The first run"): what run / demo say first and last, MRDD's stage-2 progress
lines, progress and cost of eval --mine / --missing, what `methods` and `datasets` show, a repository config path
given outside the repository."""
import contextlib
import io
import json
import re

import pytest

from viewsplit.cli import main
from viewsplit.cli.training import headline
from viewsplit.engine.logger import headline_terms

TINY = ["data.train_limit=60", "data.test_limit=20", "stages.consistency.epochs=1", "stages.disentangle.epochs=1",
        "stages.consistency.batch_size=32", "stages.disentangle.batch_size=32", "train.progress=lines",
        "train.progress_every=0"]
QUICK_EVAL = ["eval.kmeans_seeds=1", "eval.probes=[logreg]", "eval.raw_baselines=false", "eval.readout_mlp=false"]


@pytest.fixture(scope="module")
def mrdd_run(tmp_path_factory):
    """A tiny Handwritten MRDD run made with `viewsplit run`, and what it printed."""
    out = tmp_path_factory.mktemp("first") / "run"
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        assert main(["run", "handwritten/mrdd", *TINY, *QUICK_EVAL, "eval.plots=false", "--out", str(out)]) == 0
    return out, std.getvalue(), err.getvalue()


def test_run_opens_with_what_trains_on_what_data_and_where(mrdd_run):
    out, _, err = mrdd_run
    first = err.splitlines()[0]
    assert first == ("viewsplit: training mrdd (consistency 1 epochs, disentangle 1 epochs) on handwritten: 60 train "
                     f"+ 20 test samples, 6 views (76, 216, 64, 240, 47, 6); run folder {out}")


def test_run_ends_with_headline_numbers_the_folder_and_the_plots(mrdd_run):
    out, std, _ = mrdd_run
    last = std.rstrip().splitlines()[-3:]
    assert re.fullmatch(r"headline: C: k-means ACC [\d.]+ ± [\d.]+, logistic probe [\d.]+ \| "
                        r"C\+V_all: k-means ACC [\d.]+ ± [\d.]+, logistic probe [\d.]+", last[0]), last[0]
    assert last[1:] == [f"run folder: {out}", "plots: none (eval.plots=false, or matplotlib is not installed)"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"logistic probe {metrics['classification']['C']['logreg']['acc']:.3f}" in last[0]


def test_headline_picks_the_main_code_combined_and_raw_rows():
    def rows(acc):
        return {"acc": {"mean": acc, "std": 0.01}}
    metrics = {"clustering": {"Z_0": rows(0.5), "Z_cat": rows(0.7), "raw_0": rows(0.1), "raw_all": rows(0.6)},
               "classification": {"Z_cat": {"knn": {"acc": 0.9}, "logreg": {"acc": 0.95}}}}
    assert headline(metrics) == ("headline: Z_cat: k-means ACC 0.700 ± 0.010, logistic probe 0.950 | "
                                 "raw_all: k-means ACC 0.600 ± 0.010")
    assert headline({"clustering": {}, "classification": {}}).startswith("headline: no k-means or probe scores")


def test_mrdd_stage_two_progress_lines_lead_with_the_model_terms(mrdd_run):
    _, _, err = mrdd_run
    line = next(x for x in err.splitlines() if x.startswith("viewsplit: disentangle: epoch 1/1, step 1/"))
    terms = line.split(" | ")[1]
    assert terms.startswith("model/objective ") and "model/reconstruction " in terms and "model/kl " in terms
    assert "model/club " in terms and "critic/objective " in terms and "nll_nats" not in terms


def test_headline_terms_order_totals_then_per_view_and_the_model_first():
    terms = {"critic/objective": 1.0, **{f"critic/nll_nats_{v}": 2.0 for v in range(6)},
             "model/objective": 3.0, "model/reconstruction": 4.0, "model/kl": 5.0, "model/club": 6.0,
             **{f"model/club_{v}": 7.0 for v in range(6)}}
    assert [k for k, _ in headline_terms(terms)] == ["model/objective", "model/reconstruction", "model/kl",
                                                     "model/club", "critic/objective", "model/club_0"]
    single = {"objective": 1.0, "reconstruction": 2.0, "kl": 3.0}   # one step: names unprefixed, order kept
    assert headline_terms(single) == list(single.items())


def test_eval_mine_shows_progress_with_an_eta_and_full_is_ten_runs(mrdd_run, tmp_path, capsys):
    out, _, _ = mrdd_run
    assert main(["eval", str(out), "--mine", "eval.mine_epochs=1", *QUICK_EVAL, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "viewsplit: eval: MINE fits: I(C; V_0) run 1/3 (1/18) | elapsed 0s, ETA after the first" in err
    assert re.search(r"eval: MINE fits: I\(C; V_5\) run 3/3 \(18/18\) \| elapsed \d+s, ETA \d+s", err)
    assert "eval: MINE fits: done, 18 in" in err
    per_run = json.loads((tmp_path / "a" / "metrics.json").read_text())["redundancy"]["V_0"]["mine_nats"]["per_run"]
    assert len(per_run) == 3
    assert main(["eval", str(out), "--mine", "--full", "eval.mine_epochs=1", *QUICK_EVAL,
                 "--out", str(tmp_path / "b")]) == 0
    assert "(60/60)" in capsys.readouterr().err
    full = json.loads((tmp_path / "b" / "metrics.json").read_text())["redundancy"]["V_0"]["mine_nats"]["per_run"]
    assert len(full) == 10


def test_eval_missing_shows_progress_with_an_eta_and_full_is_every_combination(mrdd_run, tmp_path, monkeypatch,
                                                                                 capsys):
    out, _, _ = mrdd_run
    quick = [*QUICK_EVAL, "eval.representations=[C]", "eval.kmeans_seeds=0"]
    assert main(["eval", str(out), "--missing", *quick, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "viewsplit: eval --missing: views [0] (1/31) | elapsed 0s, ETA after the first" in err
    assert re.search(r"eval --missing: imputing the other views from \[[\d, ]+\] \(31/31\) \| elapsed \d+s, "
                     r"ETA \d+s", err)
    assert len(json.loads((tmp_path / "a" / "missing.json").read_text())["combinations"]) == 16
    # --full: all 2^6 - 1 combinations (the protocol itself is the one above; only its settings are checked here)
    import viewsplit.engine.run as run_module

    seen = []
    monkeypatch.setattr(run_module, "evaluate_missing_run", lambda run, out: seen.append(run.cfg.eval) or {})
    monkeypatch.setattr("viewsplit.eval.missing.markdown", lambda result: "")
    assert main(["eval", str(out), "--missing", "--full", "--out", str(tmp_path / "b")]) == 0
    assert main(["eval", str(out), "--missing", "--full", "eval.missing_combinations=20", "--out", str(tmp_path)]) == 0
    assert [(e.missing_combinations, e.mine_runs) for e in seen] == [(63, 10), (20, 10)]


def test_methods_shows_each_preset_beside_the_papers_values(capsys):
    assert main(["methods", "mrdd"]) == 0
    out = capsys.readouterr().out
    assert "  model keys: c_dim=10, v_dim=10, mask_ratio=0.7" in out
    assert "  presets: what you get (`viewsplit run <preset>/mrdd`), where it differs from the values above" in out
    assert ("    handwritten (vector data: the estimator's defaults and viewsplit demo): model c_dim=16, v_dim=6, "
            "mask_ratio=0.0") in out
    assert "      stage consistency: epochs=40, batch_size=128, lr=0.001" in out
    assert "    edge_fmnist (image data): model v_dim=512" in out
    assert out.index("handwritten (vector") < out.index("edge_fmnist (image")


def test_datasets_says_what_your_own_data_needs(capsys):
    assert main(["datasets"]) == 0
    rows = {r.split(" | ")[0].strip("| "): r.split(" | ")[2] for r in capsys.readouterr().out.splitlines()[2:]}
    assert rows["npz"] == "your data: data.path=FILE.npz"
    assert rows["csv"] == "your data: data.views=[a.csv,b.csv]"
    assert rows["folder"] == rows["imagefolder"] == "your data: data.path=DIR"
    assert rows["augpairs"] == "needs data.source"
    assert rows["handwritten"] == "yes"


def test_a_repository_config_path_outside_the_repository_names_the_shipped_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "configs/handwritten/mrdd.yaml"]) == 2
    assert capsys.readouterr().err.strip() == (
        "viewsplit: error: configs/handwritten/mrdd.yaml: config file not found here; the shipped config of that "
        "name is `handwritten/mrdd` (e.g. viewsplit run handwritten/mrdd)")
    assert main(["train", "elsewhere/mine.yaml"]) == 2
    assert "shipped" not in capsys.readouterr().err
    assert not any(tmp_path.iterdir())

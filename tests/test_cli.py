"""End-to-end command-line runs: the baseline learns, run folders are complete, errors are clean."""
import json
import os
import subprocess
import sys

import yaml
from conftest import REPO

from viewsplit.cli import main


def cli(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "viewsplit", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_run_handwritten_baseline_learns_and_writes_run_folder(tmp_path):
    out = tmp_path / "run"
    proc = cli("run", str(REPO / "configs/handwritten/autoencoder.yaml"), "stages.train.epochs=15",
               "eval.kmeans_seeds=3",
               "eval.secondary_splits=[test]", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "| C |" in proc.stdout and f"run folder: {out}" in proc.stdout
    for name in ("config.yaml", "checkpoints/last.pt", "checkpoints/final.pt", "log.jsonl", "metrics.json",
                 "metrics.md"):
        assert (out / name).exists(), name
    m = json.loads((out / "metrics.json").read_text())
    assert (m["dataset"], m["method"], m["split"]) == ("handwritten", "autoencoder", "all")
    acc = m["clustering"]["C"]["acc"]
    assert set(acc) == {"mean", "std", "per_seed"} and len(acc["per_seed"]) == 3
    # raw standardised concatenated views give k-means ACC 0.824 (docs/datasets.md#handwritten-raw-baselines):
    # the baseline must beat it clearly
    assert acc["mean"] > 0.87
    assert acc["mean"] > m["clustering"]["raw_all"]["acc"]["mean"] + 0.03  # the report's own raw-view row
    assert m["classification"]["C"]["logreg"]["acc"] > 0.93
    assert set(m["classification"]["C"]) == {"logreg", "linear_svm", "knn"}
    assert set(m["timing"]) == {"train_seconds", "eval_seconds"} and m["secondary"]["test"]["clustering"]["C"]
    assert yaml.safe_load((out / "config.yaml").read_text())["stages"]["train"]["epochs"] == 15
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["objective"] for r in rows if r["kind"] == "epoch"]
    assert len(losses) == 15 and losses[-1] < 0.7 * losses[0]
    # re-evaluation of the saved run gives the same numbers; with --out it leaves the run's report alone
    report = (out / "metrics.md").read_text()
    proc = cli("eval", str(out), "eval.kmeans_seeds=3", "eval.probes=[logreg]", "--out", str(tmp_path / "re"))
    assert proc.returncode == 0, proc.stderr
    assert f"report folder: {tmp_path / 're'}" in proc.stdout and (out / "metrics.md").read_text() == report
    again = json.loads((tmp_path / "re" / "metrics.json").read_text())
    assert again["clustering"]["C"]["acc"]["per_seed"] == acc["per_seed"]
    assert set(again["classification"]["C"]) == {"logreg"}


def test_datasets_lists_every_builtin(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("handwritten", "edge_fmnist", "edge_mnist", "coil20", "coil100", "office31", "npz", "csv",
                 "synthetic"):
        assert f"| {name} |" in out
    assert "shipped inside the package" in out


def test_user_errors_are_one_line_without_traceback(tmp_path):
    proc = cli("train", str(REPO / "configs/handwritten/autoencoder.yaml"), "stages.train.epoch=3",
               "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "stages.train.epoch: unknown key; valid keys of stages.train: epochs" in proc.stderr
    proc = cli("eval", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "missing: not a run folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("run", str(REPO / "configs/handwritten/autoencoder.yaml"), "data.name=edge_mnist", "data.root=/nowhere")
    assert proc.returncode == 2 and "Looked in:" in proc.stderr and "Traceback" not in proc.stderr


def test_python_api_quickstart(tmp_path):
    from viewsplit.config import load_config
    from viewsplit.engine.run import run_all

    cfg = load_config(REPO / "configs/handwritten/autoencoder.yaml", ["stages.train.epochs=2", "eval.kmeans_seeds=1",
                                                               "eval.probes=[knn]"])
    _, metrics = run_all(cfg, tmp_path / "api")
    assert metrics["classification"]["C"]["knn"]["acc"] > 0.5


def test_bench_aggregates_seeds_and_resumes(tmp_path):
    from viewsplit.bench import bench

    over = ["data.train_limit=300", "eval.kmeans_seeds=1", "eval.probes=[logreg]", "eval.figures=false"]
    table = bench(["autoencoder"], ["handwritten"], 2, tmp_path, over)
    agg = table["handwritten"]["autoencoder"]
    assert len(agg["clustering"]["C"]["acc"]["per_seed"]) == 2 and agg["classification"]["C"]["logreg"]["mean"] > 0.8
    md = (tmp_path / "bench.md").read_text()
    assert "| autoencoder | C |" in md
    # a second call reuses the finished seeds instead of training again
    stamp = (tmp_path / "handwritten" / "autoencoder" / "seed1" / "metrics.json").stat().st_mtime
    bench(["autoencoder"], ["handwritten"], 2, tmp_path, over)
    assert (tmp_path / "handwritten" / "autoencoder" / "seed1" / "metrics.json").stat().st_mtime == stamp
    assert main(["bench", "--methods", "nope", "--out", str(tmp_path)]) == 2


def test_bench_aggregate_keeps_what_every_seed_evaluated():
    from viewsplit.bench import aggregate

    def run(acc: float, reps: dict) -> dict:
        return {"split": "test", "timing": {"train_seconds": 1.0},
                "clustering": {r: {m: {"mean": acc} for m in ("acc", "nmi", "ari")} for r in reps},
                "classification": {r: {p: {"acc": acc} for p in probes} for r, probes in reps.items()}}

    agg = aggregate([run(0.8, {"C": ["logreg", "knn"], "V_0": ["logreg"]}), run(0.6, {"C": ["logreg"]})])
    assert list(agg["clustering"]) == ["C"] and list(agg["classification"]) == ["C"]
    assert list(agg["classification"]["C"]) == ["logreg"]
    assert agg["classification"]["C"]["logreg"]["mean"] == 0.7
    assert agg["clustering"]["C"]["nmi"]["per_seed"] == [0.8, 0.6]


def test_bench_table_shows_baselines_once_and_the_margin_over_them():
    from viewsplit.bench import aggregate, markdown

    def run(acc: float, rep: str) -> dict:
        reps = {rep: acc, "raw_all": 0.7, "cca_10": 0.75}
        return {"split": "test", "timing": {"train_seconds": 1.0},
                "clustering": {r: {m: {"mean": a} for m in ("acc", "nmi", "ari")} for r, a in reps.items()},
                "classification": {r: {"logreg": {"acc": a}} for r, a in reps.items()},
                "summary": {"kmeans_acc": {"learned": rep, "learned_value": acc, "baseline": "cca_10",
                                           "baseline_value": 0.75, "margin": acc - 0.75}}}

    table = {"hw": {"mrdd": aggregate([run(0.8, "C"), run(0.9, "C")]), "dcca": aggregate([run(0.7, "Z_cat")] * 2)}}
    md = markdown(table, 2)
    assert md.count("| raw_all |") == 1 and md.count("| cca_10 |") == 1     # once, not under every method
    assert "| mrdd | C |" in md and "| dcca | Z_cat |" in md and "| mrdd | raw_all |" not in md
    assert "| mrdd | kmeans_acc | C 0.8500 ± 0.0500 | cca_10 0.7500 ± 0.0000 | +0.1000 ± 0.0500 |" in md
    assert "| dcca | kmeans_acc | Z_cat 0.7000 ± 0.0000 | cca_10 0.7500 ± 0.0000 | -0.0500 ± 0.0000 |" in md

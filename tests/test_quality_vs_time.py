"""benchmarks/quality_vs_time.py: budgets become stage epochs in the preset's proportions, and one tiny budget runs."""
from __future__ import annotations

from conftest import REPO
from helpers import import_benchmark

qt = import_benchmark("quality_vs_time")


def test_a_budget_keeps_the_presets_split_of_time_between_stages() -> None:
    # the Edge-FMNIST preset: 18 + 4 epochs at 23.5 s / 54 s per epoch = 423 + 216 s
    assert qt.epochs_for(639, (18, 4), (23.5, 54.0)) == (18, 4)
    assert qt.epochs_for(300, (18, 4), (23.5, 54.0)) == (8, 2)
    assert qt.epochs_for(3600, (18, 4), (23.5, 54.0)) == (101, 23)
    assert qt.epochs_for(1, (18, 4), (23.5, 54.0)) == (1, 1)          # never a stage of zero epochs


def test_two_budgets_train_continue_and_report(tmp_path, capsys) -> None:
    out = tmp_path / "curve.md"
    assert qt.main(["--config", str(REPO / "configs/handwritten/mrdd.yaml"), "--budgets", "0.02,0.04",
                    "--epoch-seconds", "0.5,0.5", "--out", str(out),
                    "data.name=synthetic", "data.n_samples=300", "data.n_views=2"]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| 0.0")]
    assert len(rows) == 2 and rows[0].split("|")[2].strip() == "1 + 1"
    assert all(len(r.split("|")) == 10 for r in rows)                # every column filled

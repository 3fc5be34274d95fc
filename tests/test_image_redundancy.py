"""Issue 31: the report of every Edge-FMNIST MRDD preset carries the held-out redundancy section: R² of C
from each specific posterior *mean* by the ridge and the MLP read-out (and from a posterior sample)."""
import pytest
import torch
from conftest import REPO, needs_fmnist

from viewsplit.config import load_config
from viewsplit.engine.run import run_all


@needs_fmnist
@pytest.mark.parametrize("preset", ["mrdd", "mrdd-reference"])
def test_image_presets_report_the_redundancy_of_c_in_the_specific_means(tmp_path, preset):
    torch.set_num_threads(1)
    cfg = load_config(REPO / "configs" / "edge_fmnist" / f"{preset}.yaml", [
        "data.train_limit=96", "data.test_limit=64", "stages.consistency.steps=1", "stages.disentangle.steps=1",
        "stages.consistency.batch_size=32", "stages.disentangle.batch_size=32", "eval.kmeans_seeds=1",
        "eval.probes=[logreg]", "eval.secondary_splits=[]",
        "eval.raw_baselines=false", "eval.plots=false", "eval.figures=false", "train.threads=1"])
    assert cfg.eval.redundancy and cfg.eval.readout_mlp      # the presets ask for it (the default)
    _, metrics = run_all(cfg, tmp_path / preset)
    red = metrics["redundancy"]
    assert set(red) == {"V_0", "V_1"}
    for row in red.values():
        assert isinstance(row["ridge_r2"], float) and isinstance(row["mlp_r2"], float)   # the means, both read-outs
        assert isinstance(row["sample"]["ridge_r2"], float)
    assert "## Redundancy of C in V_v" in (tmp_path / preset / "metrics.md").read_text()

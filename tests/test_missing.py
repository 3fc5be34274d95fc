"""Missing views everywhere (docs/evaluation.md#missing-views): every method ignores absent views, trains on
incomplete data and documents how; the per-combination evaluation, imputation and ``eval --missing``."""
import copy
import importlib
import json
import math

import pytest
import torch
from threadpoolctl import threadpool_limits

from viewsplit.cli import main
from viewsplit.config import load_config
from viewsplit.data.multiview import Batch, subset_mask
from viewsplit.engine.run import prepare, train
from viewsplit.errors import ConfigError
from viewsplit.eval.evaluate import evaluate
from viewsplit.eval.missing import evaluate_missing, present_representations, view_combinations
from viewsplit.methods import available_methods, get_method
from viewsplit.methods.base import apply_present
from viewsplit.models.backbones import BackboneConfig, feature_encoder

#: tiny networks for every registered self-supervised method
TINY = {
    "autoencoder": {"code_dim": 4, "backbone": {"hidden": [16]}},
    "mrdd": {"c_dim": 3, "v_dim": 3, "mask_ratio": 0.5, "consistency": {"hidden": [16]}, "specific": {"hidden": [16]}},
    "mib": {"z_dim": 4, "contrast": 1.0, "encoder": {"hidden": [16], "norm": False}, "critic_hidden": [16]},
    "decur": {"projector": [16, 8], "contrast": 1.0, "backbone": {"hidden": [16]}},
    "softcca": {"out_dim": 4, "contrast": 1.0, "backbone": {"hidden": [16]}},
    "fae": {"shared_dim": 3, "private_dim": 2, "contrast": 1.0, "backbone": {"hidden": [16]}},
    "dcca": {"out_dim": 3, "backbone": {"hidden": [16]}},
}
#: supervised methods (DMRNet and its fusion baseline), evaluated per combination by their own tests
SUPERVISED = {"dmrnet", "fusion"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (two oversubscribe the shared 2-core machine)."""
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield


def tiny_config(method: str, n_views: int = 3, epochs: int = 1, overrides: tuple[str, ...] = ()):
    raw = {"method": method, "model": TINY[method],
           "data": {"name": "synthetic", "n_samples": 240, "n_views": n_views, "view_dim": 12},
           "stages": {s: {"epochs": epochs, "batch_size": 32} for s in get_method(method).stage_defaults},
           "train": {"progress": "never", "tensorboard": False},
           "eval": {"kmeans_seeds": 1, "kmeans_n_init": 1, "probes": ["logreg"], "figures": False}}
    return load_config(base=raw, overrides=list(overrides))


def test_every_self_supervised_method_is_covered():
    shipped = {m for m in available_methods() if get_method(m).__module__.startswith("viewsplit.methods.")}
    assert shipped - SUPERVISED == set(TINY)     # methods registered by other tests do not count


# ---------------------------------------------------------------------------- (a) masks are respected
MASK = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 1, 0]] * 6, dtype=torch.bool)


def _step_outputs(method, stage: str, batch: Batch) -> list[tuple[dict, list]]:
    """Every optimiser step's loss terms and parameter gradients on ``batch``, each from a fresh copy."""
    out = []
    for i, _ in enumerate(method.stage(stage).steps):
        m = copy.deepcopy(method).train()
        step = m.stage(stage).steps[i]
        torch.manual_seed(0)
        terms = step.loss(batch)
        if terms["objective"].requires_grad:
            terms["objective"].backward()
        out.append(({k: v.detach() for k, v in terms.items()}, [p.grad for p in step.parameters()]))
    return out


@pytest.mark.parametrize("name", sorted(TINY))
def test_garbage_in_absent_views_changes_no_output_and_no_loss(name, tmp_path):
    cfg = tiny_config(name)
    run = prepare(cfg, tmp_path)
    method, ds = run.method, run.splits.train
    clean = ds.with_mask(torch.cat([MASK, torch.ones(len(ds) - len(MASK), 3, dtype=torch.bool)])).batch(
        torch.arange(len(MASK)))
    views = [x.clone() for x in clean.views]
    for v, x in enumerate(views):
        x[~MASK[:, v]] = torch.randn_like(x[~MASK[:, v]]) * 1e20       # finite, but its error overflows
    garbage = Batch(views, clean.mask, None, clean.index)
    for stage in cfg.stages:                                               # train mode, every optimiser step
        for (t1, g1), (t2, g2) in zip(_step_outputs(method, stage, clean), _step_outputs(method, stage, garbage)):
            assert all(torch.isfinite(t1[k]) and torch.equal(t1[k], t2[k]) for k in t1), (stage, t1, t2)
            assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g1, g2)), stage
    method.eval()
    with torch.no_grad():
        a, b = method.encode(clean.views, MASK), method.encode(garbage.views, MASK)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        if hasattr(method, "predict"):
            pa, pb = method.predict(clean.views, MASK), method.predict(garbage.views, MASK)
            assert all(torch.isfinite(p).all() and torch.equal(p, q) for p, q in zip(pa, pb))


# ---------------------------------------------------------------------------- (b) training on incomplete data
@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_apply_present_with_no_present_sample_gives_zeros_in_training(norm):
    """A view absent for a whole training batch: zeros out, finite BatchNorm statistics, no error."""
    net, dim = feature_encoder((1, 8, 8), BackboneConfig(image="conv", channels=[4, 8], conv_norm=norm))
    net.train()
    out = apply_present(net, torch.randn(3, 1, 8, 8), torch.zeros(3, dtype=torch.bool))
    out.sum().backward()
    assert torch.equal(out, torch.zeros(3, dim))
    assert all(torch.isfinite(b).all() for b in net.buffers())


@pytest.mark.parametrize("name", sorted(TINY))
def test_trains_with_half_the_samples_incomplete(name, tmp_path):
    run = train(tiny_config(name, epochs=6, overrides=("data.missing_rate=0.5",)), tmp_path)
    assert not run.splits.train.mask.all() and run.splits.test.mask.all()
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    for stage in run.cfg.stages:
        epochs = [r for r in rows if r["kind"] == "epoch" and r["stage"] == stage]
        key = "objective" if "objective" in epochs[0] else "model/objective"
        losses = [r[key] for r in epochs]
        assert len(losses) == 6 and all(math.isfinite(v) for v in losses), (stage, losses)
        assert losses[-1] < losses[0], (stage, losses)


# ---------------------------------------------------------------------------- (c) documentation
@pytest.mark.parametrize("name", sorted(TINY))
def test_module_docstring_says_how_missing_views_are_handled(name):
    doc = importlib.import_module(get_method(name).__module__).__doc__.lower()
    assert "missing" in doc and ("loss" in doc or "term" in doc), name


# ---------------------------------------------------------------------------- combinations
def test_view_combinations():
    assert view_combinations(2) == [(0,), (1,), (0, 1)]
    assert view_combinations(3, max_combinations=1) == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert len(view_combinations(4)) == 15
    six = view_combinations(6, max_combinations=12, seed=3)
    assert len(six) == 12 and len(set(six)) == 12 and six == view_combinations(6, 12, seed=3)
    assert [c for c in six if len(c) in (1, 6)] == [(0,), (1,), (2,), (3,), (4,), (5,), tuple(range(6))]
    assert six != view_combinations(6, 12, seed=4)
    assert [len(c) for c in six] == sorted(len(c) for c in six)
    assert len(view_combinations(6, max_combinations=2)) == 7 and len(view_combinations(6, 100)) == 63
    for combo in view_combinations(5, 10):
        mask = subset_mask(4, 5, combo)
        assert mask.any(1).all() and mask[0].nonzero().flatten().tolist() == list(combo)
    reps = {"C": 0, "V_0": 0, "V_12": 0, "Z_cat": 0, "C+V_all": 0}
    assert list(present_representations(reps, (0, 1))) == ["C", "V_0", "Z_cat", "C+V_all"]
    with pytest.raises(ConfigError, match=r"eval\.missing_combinations"):
        tiny_config("fae", overrides=("eval.missing_combinations=0",))


@pytest.mark.parametrize("n_views, max_combinations, n_rows", [(2, 16, 3), (3, 16, 7), (6, 10, 10)])
def test_one_row_per_combination(n_views, max_combinations, n_rows, tmp_path):
    cfg = tiny_config("autoencoder", n_views, overrides=(f"eval.missing_combinations={max_combinations}",))
    run = prepare(cfg, tmp_path)                      # autoencoder: one representation, C
    result = evaluate_missing(run.method, run.splits, cfg.eval)
    assert len(result["rows"]) == len(result["combinations"]) == n_rows
    assert all(r["views"] and r["representation"] == "C" for r in result["rows"])
    assert set(result["rows"][0]["clustering"]) == {"acc", "nmi", "ari"}
    assert "logreg" in result["rows"][0]["classification"]
    assert result["mean"]["C"]["n_combinations"] == n_rows and result["probe_train_features"].endswith("complete views")
    assert "imputation" not in result
    # all views present = the standard evaluation
    full = evaluate(run.method, run.splits, cfg.eval)
    assert result["rows"][-1]["classification"]["logreg"] == full["classification"]["C"]["logreg"]
    assert result["rows"][-1]["clustering"]["acc"] == full["clustering"]["C"]["acc"]


@pytest.mark.parametrize("name", ["fae", "mrdd"])
def test_imputation_report(name, tmp_path):
    cfg = tiny_config(name, overrides=("data.missing_rate=0.5",))
    run = prepare(cfg, tmp_path)
    result = evaluate_missing(run.method, run.splits, cfg.eval)
    assert "training used masks" in result["probe_train_features"]
    imp = result["imputation"]["combinations"]
    assert [c["views"] for c in imp] == [[0], [1], [2], [0, 1], [0, 2], [1, 2]]
    masked = {(tuple(r["views"]), r["representation"]): r["classification"]["logreg"]["acc"] for r in result["rows"]}
    for c in imp:
        assert c["imputed_views"] == [v for v in range(3) if v not in c["views"]]
        assert set(c["errors"]) == {f"view_{v}" for v in c["imputed_views"]}
        assert all(set(e) == {"mse", "mean_baseline_mse", "ratio"} for e in c["errors"].values())
        assert "C" in c["classification"] and not any(f"V_{v}" in c["classification"] for v in c["imputed_views"])
        for rep, accs in c["classification"].items():
            assert set(accs["logreg"]) == {"masked", "imputed"}
            assert accs["logreg"]["masked"] == masked[tuple(c["views"]), rep]
    # an oracle that "imputes" the true views: zero error, and the completed samples score as all views do
    run.method.predict = lambda views, mask=None: views
    oracle = evaluate_missing(run.method, run.splits, cfg.eval)["imputation"]["combinations"]
    assert all(e["mse"] == 0.0 for c in oracle for e in c["errors"].values())
    assert all(c["classification"]["C"]["logreg"]["imputed"] == masked[(0, 1, 2), "C"] for c in oracle)


# ---------------------------------------------------------------------------- the CLI
def test_cli_eval_missing(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_config("fae", n_views=2, epochs=2), out)
    assert main(["eval", str(out), "--missing", "eval.probes=[logreg,knn]"]) == 0
    printed = capsys.readouterr().out
    assert "# Missing views: fae on synthetic" in printed and "| view0+view1 | C |" in printed
    assert "## Imputation of the missing test views" in printed and "missing-view report:" in printed
    result = json.loads((out / "missing.json").read_text())
    assert [r["views"] for r in result["rows"] if r["representation"] == "C"] == [[0], [1], [0, 1]]
    assert set(result["rows"][0]["classification"]) == {"logreg", "knn"} and "eval_seconds" in result["timing"]
    assert (out / "missing.md").read_text().startswith("# Missing views") and not (out / "metrics.json").exists()
    with pytest.raises(SystemExit):
        main(["eval", str(out), "--missing", "--mine"])


def test_missing_rates_benchmark_routes_overrides_per_method():
    from helpers import import_benchmark

    stage_overrides = import_benchmark("missing_rates").stage_overrides
    items = ["stages.*.epochs=1", "mib:model.start_iteration=250", "data.root=/a:b"]
    assert stage_overrides("mib", items) == ["stages.train.epochs=1", "model.start_iteration=250", "data.root=/a:b"]
    assert stage_overrides("mrdd", items) == ["stages.consistency.epochs=1", "stages.disentangle.epochs=1",
                                              "data.root=/a:b"]

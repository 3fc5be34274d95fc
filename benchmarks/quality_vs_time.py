"""Quality against training time for a two-stage image preset (issue 31): a compute limit or a method limit?

    python benchmarks/quality_vs_time.py [--config configs/edge_fmnist/mrdd.yaml] [--budgets 5,15,30]
        [--epoch-seconds 23.5,54] [--threads 1] [--seed 0] [--out FILE.md] [key=value ...]

A budget of B minutes is the preset's split of time between its stages, scaled: stage 1 gets
``B · f / t₁`` epochs and stage 2 ``B · (1 − f) / t₂`` (at least one), where t₁, t₂ are the seconds of one
epoch of each stage *alone on this machine with 2 threads* (``--epoch-seconds``, from
``benchmarks/step_profile.py --threads 2``: ms per step × steps per epoch) and f is the preset's stage-1
share of its own time.  The budget axis is therefore time on an idle machine even when this script runs
beside other work (its own wall clock is printed as well).

Stage 1 trains once, continued from budget to budget (the preset's learning rate is constant, so a
continued run differs from a fresh one of the same length only in its optimiser's restarted moments and the
order of its batches).  At each budget a copy of stage 1 trains stage 2 for that budget's epochs from
scratch, and the copy is evaluated by the report's protocol on the test split: k-means NMI / ACC of ``C``
(3 k-means seeds), the logistic probe on ``C+V_all`` (fitted on the training split), and the held-out
redundancy of C in each specific posterior mean (ridge and MLP R², docs/evaluation.md#redundancy-of-c-in-v_v).
The last column is the held-out ridge R² of C from the one-hot *class*: how much of C any code that knows
the class can predict, so a specific code that classifies well cannot be far below it in R²(C | μ_V).
"""
from __future__ import annotations

# isort: off
import viewsplit  # noqa: F401  (before torch: OpenMP threads wait passively, as in every viewsplit run)
# isort: on

import argparse
import copy
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from viewsplit.config import EvalConfig, load_config
from viewsplit.data.multiview import DataSplits
from viewsplit.engine.run import prepare
from viewsplit.engine.trainer import Trainer
from viewsplit.eval.evaluate import evaluate, extract
from viewsplit.eval.readout import ridge_r2
from viewsplit.methods.base import Method

REPO = Path(__file__).resolve().parents[1]
STAGES = ("consistency", "disentangle")


def epochs_for(budget_s: float, preset: tuple[int, int], epoch_s: tuple[float, float]) -> tuple[int, int]:
    """Stage epochs for ``budget_s`` seconds, keeping the preset's split of time between the stages."""
    share = preset[0] * epoch_s[0] / (preset[0] * epoch_s[0] + preset[1] * epoch_s[1])
    return max(1, round(budget_s * share / epoch_s[0])), max(1, round(budget_s * (1 - share) / epoch_s[1]))


def class_r2(method: Method, splits: DataSplits) -> float:
    """Held-out ridge R² of C from the one-hot class (fitted on train, scored on test)."""
    c_tr, c_te = (extract(method, d)["C"] for d in (splits.train, splits.test))
    labels = [d.labels.numpy() for d in (splits.train, splits.test)]
    eye = np.eye(max(int(y.max()) for y in labels) + 1)
    y_tr, y_te = (eye[y] for y in labels)
    return ridge_r2(y_tr, c_tr, y_te, c_te)


def row(budget: float, epochs: tuple[int, int], wall: float, m: dict, by_class: float) -> str:
    km, probe, red = m["clustering"]["C"], m["classification"]["C+V_all"]["logreg"], m.get("redundancy", {})
    r2 = "; ".join(f"{r}: {red[r]['ridge_r2']:.2f} / {red[r].get('mlp_r2', float('nan')):.2f}"
                   for r in sorted(red) if r.startswith("V_"))
    return (f"| {budget:g} | {epochs[0]} + {epochs[1]} | {wall / 60:.1f} | {km['nmi']['mean']:.3f} | "
            f"{km['acc']['mean']:.3f} | {probe['acc']:.3f} | {r2} | {by_class:.2f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "edge_fmnist" / "mrdd.yaml"))
    ap.add_argument("--budgets", default="5,15,30", help="minutes on an idle machine, ascending")
    ap.add_argument("--epoch-seconds", default="23.5,54", help="one epoch of each stage alone, 2 threads")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    budgets = sorted(float(b) for b in args.budgets.split(","))
    epoch_s = tuple(float(s) for s in args.epoch_seconds.split(","))
    base = [f"train.seed={args.seed}", f"train.threads={args.threads}", "train.progress=never",
            "train.tensorboard=false", *args.overrides]
    cfg = load_config(args.config, base)
    preset = (cfg.stages[STAGES[0]].epochs, cfg.stages[STAGES[1]].epochs)
    ecfg = EvalConfig(kmeans_seeds=3, probes=["logreg"], representations=["C", "C+V_all", "V_0", "V_1"],
                      figures=False, plots=False, raw_baselines=False, factors=False)
    torch.set_num_threads(args.threads)
    lines = [f"`python benchmarks/quality_vs_time.py --config {args.config} --budgets {args.budgets} "
             f"--epoch-seconds {args.epoch_seconds} --threads {args.threads} --seed {args.seed}"
             f"{''.join(' ' + o for o in args.overrides)}` (preset {preset[0]} + {preset[1]} epochs)", "",
             "| budget (min, idle) | epochs (stage 1 + 2) | wall (min, this run) | NMI C | ACC C | probe C+V_all | "
             "R²(C \\| μ_V) ridge / MLP | R²(C \\| class) |", "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    with TemporaryDirectory() as tmp:
        run = prepare(cfg, Path(tmp))
        done, wall1 = 0, 0.0
        for budget in budgets:
            e1, e2 = epochs_for(budget * 60, preset, epoch_s)
            if e1 > done:
                chunk = load_config(args.config, [*base, f"stages.{STAGES[0]}.epochs={e1 - done}"])
                wall1 += Trainer(chunk, run.method, run.splits.train, tmp).run_stage(STAGES[0])
                done = e1
            method = copy.deepcopy(run.method)
            second = load_config(args.config, [*base, f"stages.{STAGES[1]}.epochs={e2}"])
            wall2 = Trainer(second, method, run.splits.train, tmp).run_stage(STAGES[1])
            t = time.perf_counter()
            metrics = evaluate(method, run.splits, ecfg)
            lines.append(row(budget, (done, e2), wall1 + wall2, metrics, class_r2(method, run.splits)))
            print(lines[-1], f"(evaluation {time.perf_counter() - t:.0f} s)", flush=True)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The MRDD paper's three claims, reproduced with the CPU preset (fewer epochs allowed).

    python benchmarks/mrdd_claims.py mask-ratio [--ratios 0.0,0.3,...] [--epochs1 N]
    python benchmarks/mrdd_claims.py club       [--lams 0,1] [--epochs1 N] [--epochs2 N]
    python benchmarks/mrdd_claims.py dims       [--dims 10x10,10x32,32x10] [--epochs1 N] [--epochs2 N]
    python benchmarks/mrdd_claims.py stage2     --variants "model.v_dim=512" "model.beta=0.001 ..." [--epochs1 N]

(a) ``mask-ratio``: a higher mask ratio gives a better consistent code: stage 1 alone for each
    ratio, then k-means NMI/ACC (test split) and the logistic probe of C.
(b) ``club``: with the CLUB term on (λ > 0), the redundancy of C in V_v is lower than with λ = 0,
    at equal or better downstream accuracy: one stage 1, then stage 2 for each λ from the same
    stage-1 weights.  Redundancy is measured held out (docs/evaluation.md#redundancy-of-c-in-v_v: fitted on the train
    split's codes, scored on the test split's): ridge R² of C from V_v and the Gaussian predictive
    information in nats, from μ_v and from a posterior sample, and (``--mine-runs`` > 0) MINE.
(c) ``dims``: c_dim < v_dim helps the combined representation C+V_all.

``stage2`` is a tuning tool, not a claim: one stage 1, then stage 2 once per ``--variants`` entry (space-separated
overrides; ``""`` is the config as given), each a fresh model whose consistency encoder is the stage-1 one, so
stage-2 settings (v_dim, β, λ, epochs, …) are compared from the same C; C, V_v and C+V_all are scored, and
the held-out R² of C from μ_V and from a sample of V (as in ``club``; ``--mine-runs 0`` skips MINE).

Every row uses the same data, seed and schedule; the table is printed in Markdown.
"""
from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from viewsplit.config import load_config
from viewsplit.engine.run import prepare
from viewsplit.engine.trainer import Trainer
from viewsplit.eval.evaluate import compose, extract, extract_samples
from viewsplit.eval.metrics import kmeans_protocol
from viewsplit.eval.probes import run_probe
from viewsplit.eval.redundancy import held_out_redundancy

REPO = Path(__file__).resolve().parents[1]


def run_stage(cfg, method, data, name: str, folder: Path) -> float:
    return Trainer(cfg, method, data, folder).run_stage(name)


def scores(method, splits, reps: list[str], kmeans_seeds: int) -> dict[str, dict[str, float]]:
    n_views = splits.train.n_views
    tr = compose(extract(method, splits.train, 1024), n_views, 0)
    te = compose(extract(method, splits.test, 1024), n_views, 0)
    y_tr, y_te = splits.train.labels.numpy(), splits.test.labels.numpy()
    out = {}
    for r in reps:
        km = kmeans_protocol(te[r], y_te, int(y_te.max()) + 1, kmeans_seeds)
        out[r] = {"nmi": km["nmi"]["mean"], "acc": km["acc"]["mean"],
                  "logreg": run_probe("logreg", tr[r], y_tr, te[r], y_te)["acc"]}
    out["_train"], out["_test"] = tr, te
    return out


def _mean(rows: list[dict], get: Callable[[dict], float]) -> float:
    """Mean of ``get(row)`` over ``rows`` (one redundancy report per view)."""
    return float(np.mean([get(r) for r in rows]))


def redundancy(method, splits, s: dict, args: argparse.Namespace) -> list[dict]:
    """Held-out redundancy of C in each V_v (docs/evaluation.md#redundancy-of-c-in-v_v), from μ_v and from a
    posterior sample."""
    samples = [extract_samples(method, d, 1024, seed=i) for i, d in enumerate((splits.train, splits.test))]
    red = held_out_redundancy(s["_train"], s["_test"], *samples, mlp=False, mine_runs=args.mine_runs,
                              mine_epochs=args.mine_epochs)
    return [red[f"V_{v}"] for v in range(splits.train.n_views)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("claim", choices=("mask-ratio", "club", "dims", "stage2"))
    ap.add_argument("--config", default=str(REPO / "configs" / "edge_fmnist" / "mrdd.yaml"))
    ap.add_argument("--epochs1", type=int, default=5)
    ap.add_argument("--epochs2", type=int, default=5)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--ratios", default="0.0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--lams", default="0,1")
    ap.add_argument("--dims", default="10x10,10x32,32x10,32x32")
    ap.add_argument("--variants", nargs="+", default=[""], help="stage2: override sets, one per stage-2 run")
    ap.add_argument("--kmeans-seeds", type=int, default=3)
    ap.add_argument("--mine-runs", type=int, default=3)
    ap.add_argument("--mine-epochs", type=int, default=50)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()
    base = [f"stages.consistency.epochs={args.epochs1}", f"stages.disentangle.epochs={args.epochs2}",
            "train.progress=never", *args.overrides]
    if args.train_limit:
        base.append(f"data.train_limit={args.train_limit}")
    tmp = TemporaryDirectory()
    folder = Path(tmp.name)
    print(f"config: {args.config}; overrides: {' '.join(base)}\n")

    if args.claim == "mask-ratio":
        print("| mask ratio | C: k-means NMI | C: k-means ACC | C: logistic probe | stage-1 seconds |")
        print("|---|---|---|---|---|")
        for r in (float(x) for x in args.ratios.split(",")):
            run = prepare(load_config(args.config, [*base, f"model.mask_ratio={r}"]), folder)
            secs = run_stage(run.cfg, run.method, run.splits.train, "consistency", folder / f"m{r}")
            s = scores(run.method, run.splits, ["C"], args.kmeans_seeds)["C"]
            print(f"| {r:.1f} | {s['nmi']:.4f} | {s['acc']:.4f} | {s['logreg']:.4f} | {secs:.0f} |", flush=True)

    elif args.claim == "club":
        run = prepare(load_config(args.config, base), folder)
        run_stage(run.cfg, run.method, run.splits.train, "consistency", folder / "s1")
        print("| λ | R²(C from μ_V) | I(C; μ_V), nats | R²(C from sample V) | I(C; sample V), nats | MINE, nats | "
              "V_v logistic | C+V_all logistic | C+V_all NMI |")
        print("|---|---|---|---|---|---|---|---|---|")
        for lam in (float(x) for x in args.lams.split(",")):
            m = copy.deepcopy(run.method)
            m.cfg.lam = lam
            torch.manual_seed(run.cfg.train.seed)
            run_stage(run.cfg, m, run.splits.train, "disentangle", folder / f"lam{lam}")
            views = [f"V_{v}" for v in range(run.splits.train.n_views)]
            s = scores(m, run.splits, [*views, "C+V_all"], args.kmeans_seeds)
            per_view = redundancy(m, run.splits, s, args)
            mine = f"{_mean(per_view, lambda r: r['mine_nats']['mean']):.3f}" if args.mine_runs else "–"
            v_acc = np.mean([s[v]["logreg"] for v in views])
            print(f"| {lam:g} | {_mean(per_view, lambda r: r['ridge_r2']):.3f} | "
                  f"{_mean(per_view, lambda r: r['info']):.3f} | "
                  f"{_mean(per_view, lambda r: r['sample']['ridge_r2']):.3f} | "
                  f"{_mean(per_view, lambda r: r['sample']['info']):.3f} | {mine} | "
                  f"{v_acc:.4f} | {s['C+V_all']['logreg']:.4f} | {s['C+V_all']['nmi']:.4f} |", flush=True)

    elif args.claim == "stage2":
        run = prepare(load_config(args.config, base), folder)
        run_stage(run.cfg, run.method, run.splits.train, "consistency", folder / "s1")
        print("| stage-2 overrides | V_v logistic | C+V_all logistic | C+V_all NMI | C NMI | R²(C from μ_V) | "
              "R²(C from sample V) | stage-2 seconds |")
        print("|---|---|---|---|---|---|---|---|")
        for i, variant in enumerate(args.variants):
            var = prepare(load_config(args.config, [*base, *variant.split()]), folder)
            var.method.consistency.load_state_dict(run.method.consistency.state_dict())
            torch.manual_seed(var.cfg.train.seed)
            secs = run_stage(var.cfg, var.method, var.splits.train, "disentangle", folder / f"v{i}")
            views = [f"V_{v}" for v in range(var.splits.train.n_views)]
            s = scores(var.method, var.splits, ["C", *views, "C+V_all"], args.kmeans_seeds)
            v_acc = np.mean([s[v]["logreg"] for v in views])
            both = s["C+V_all"]
            per_view = redundancy(var.method, var.splits, s, args)
            print(f"| {variant or '(config)'} | {v_acc:.4f} | {both['logreg']:.4f} | {both['nmi']:.4f} | "
                  f"{s['C']['nmi']:.4f} | {_mean(per_view, lambda r: r['ridge_r2']):.3f} | "
                  f"{_mean(per_view, lambda r: r['sample']['ridge_r2']):.3f} | {secs:.0f} |", flush=True)

    else:
        print("| c_dim | v_dim | C+V_all logistic | C+V_all NMI | C logistic | C NMI |")
        print("|---|---|---|---|---|---|")
        for pair in args.dims.split(","):
            c, v = (int(x) for x in pair.split("x"))
            run = prepare(load_config(args.config, [*base, f"model.c_dim={c}", f"model.v_dim={v}"]), folder)
            for name in run.cfg.stages:
                run_stage(run.cfg, run.method, run.splits.train, name, folder / f"d{pair}")
            s = scores(run.method, run.splits, ["C", "C+V_all"], args.kmeans_seeds)
            print(f"| {c} | {v} | {s['C+V_all']['logreg']:.4f} | {s['C+V_all']['nmi']:.4f} | {s['C']['logreg']:.4f} | "
                  f"{s['C']['nmi']:.4f} |", flush=True)


if __name__ == "__main__":
    main()

"""DeCUR's two claims, measured on held-out data against Barlow Twins without the split.

Trains ``configs/<data>/decur.yaml`` and the same config with ``model.common_fraction=1.0``
(Barlow Twins with intra-view terms, no common/unique split), then reports on the test split:

(a) **decoupling**: the mean cross-view correlation corr(ẑ_v[:, i], ẑ_w[:, i]) of the
    standardised projector outputs over view pairs v < w, separately for the common dims
    i < K_c (target ≥ 0.9) and the unique dims i ≥ K_c (target ≤ 0.1, also as mean |corr|);
    the common dims' value on the (unaugmented) training split tells under- from overfitting;
(b) **missing views**: a logistic-regression probe on ``C`` fitted on complete training
    features, scored on test features extracted with all views and with one view only (the
    others missing via the mask, docs/evaluation.md#missing-views).  The claim holds when DeCUR loses less
    accuracy from all views to one view (mean over views) than Barlow Twins.  The reference's
    own protocol (probe fitted and scored on one view's backbone features B_v, vs B_cat) is
    reported alongside.

    python benchmarks/decur_claims.py [--data handwritten|edge_fmnist] [--threads 1] [--out DIR] [key=value ...]

Extra ``key=value`` overrides apply to both models (e.g. ``data.train_limit=2000`` for
edge_fmnist).  Results are printed as Markdown tables and written to ``DIR/claims.json``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


@torch.no_grad()
def standardised_embeddings(method, ds) -> list[np.ndarray]:
    """Per view, ẑ_v = (z_v − mean) / std with the training-set statistics the method stores (eval mode)."""
    method.eval()
    parts: list[list[torch.Tensor]] = [[] for _ in range(ds.n_views)]
    for batch in ds.batches(1024):
        for v, x in enumerate(batch.views):
            _, z = method.embed(v, x, batch.mask[:, v])
            parts[v].append((z - method.z_mean[v]) / method.z_std[v])
    return [torch.cat(p).double().numpy() for p in parts]


def cross_view_correlations(z: list[np.ndarray], n_common: int) -> dict:
    """Mean over view pairs and dims of the per-dimension Pearson correlation, common vs unique dims."""
    def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = (a - a.mean(0)) / (a.std(0) + 1e-12)
        b = (b - b.mean(0)) / (b.std(0) + 1e-12)
        return (a * b).mean(0)

    per_pair = {}
    for v in range(len(z)):
        for w in range(v + 1, len(z)):
            per_pair[(v, w)] = pearson(z[v], z[w])
    common = np.stack([c[:n_common] for c in per_pair.values()])
    out = {"common": float(common.mean()), "common_min_pair": float(common.mean(1).min()),
           "pairs": {f"{v}-{w}": {"common": float(c[:n_common].mean()),
                                  "unique_abs": float(np.abs(c[n_common:]).mean()) if c.size > n_common else None}
                     for (v, w), c in per_pair.items()}}
    if z[0].shape[1] > n_common:
        unique = np.stack([c[n_common:] for c in per_pair.values()])
        out.update(unique=float(unique.mean()), unique_abs=float(np.abs(unique).mean()))
    return out


def single_view_probes(run) -> dict:
    """logreg accuracy: C with all views / one view present, and B_v alone vs B_cat."""
    from viewsplit.eval.evaluate import extract
    from viewsplit.eval.probes import fit_probe, run_probe

    train, test = run.splits.train, run.splits.test
    n_views = train.n_views
    y_tr, y_te = train.labels.numpy(), test.labels.numpy()
    tr, te = extract(run.method, train), extract(run.method, test)
    probe_c = fit_probe("logreg", tr["C"], y_tr)
    c_all = probe_c.score(te["C"], y_te)["acc"]
    c_one, b_one = [], []
    for v in range(n_views):
        mask = torch.zeros(len(test), n_views, dtype=torch.bool)
        mask[:, v] = True
        c_one.append(probe_c.score(extract(run.method, test, mask=mask)["C"], y_te)["acc"])
        b_one.append(run_probe("logreg", tr[f"B_{v}"], y_tr, te[f"B_{v}"], y_te)["acc"])
    b_all = run_probe("logreg", tr["B_cat"], y_tr, te["B_cat"], y_te)["acc"]
    return {"C": {"all": c_all, "one": c_one, "drop": c_all - float(np.mean(c_one))},
            "B": {"all": b_all, "one": b_one, "drop": b_all - float(np.mean(b_one))}}


def train_and_measure(name: str, data: str, overrides: list[str], out: Path) -> dict:
    from viewsplit.config import load_config
    from viewsplit.engine.run import train

    cfg = load_config(REPO / "configs" / data / "decur.yaml", overrides)
    run_dir = out / name
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    run = train(cfg, run_dir)
    seconds = time.perf_counter() - t0
    z = standardised_embeddings(run.method, run.splits.test)
    z_train = standardised_embeddings(run.method, run.splits.train)
    return {"train_seconds": round(seconds, 1), "n_common": cfg.model.n_common, "K": cfg.model.embed_dim,
            "correlation": cross_view_correlations(z, cfg.model.n_common),
            "correlation_train": cross_view_correlations(z_train, cfg.model.n_common),
            "probes": single_view_probes(run),
            "view_names": list(run.splits.test.view_names), "n_test": len(run.splits.test)}


def markdown(results: dict, data: str) -> str:
    dec, bt = results["decur"], results["barlow"]
    names = dec["view_names"]
    lines = [f"## DeCUR claims on {data} (test split, {dec['n_test']} samples)", "",
             "### (a) Cross-view correlation of the standardised projector outputs (mean over view pairs)", "",
             "| model | K_c / K | common dims | worst pair (common) | unique dims (mean) | unique dims (mean abs) "
             "| common dims, train split |",
             "|---|---|---|---|---|---|---|"]
    for label, r in (("DeCUR", dec), ("Barlow Twins (no split)", bt)):
        c = r["correlation"]
        uni = f"{c['unique']:.3f}" if "unique" in c else "–"
        uabs = f"{c['unique_abs']:.3f}" if "unique_abs" in c else "–"
        lines.append(f"| {label} | {r['n_common']} / {r['K']} | {c['common']:.3f} | {c['common_min_pair']:.3f} | "
                     f"{uni} | {uabs} | {r['correlation_train']['common']:.3f} |")
    c = dec["correlation"]
    lines += ["", f"Targets: common ≥ 0.9 → {'met' if c['common'] >= 0.9 else 'NOT met'}; unique ≤ 0.1 (mean abs) → "
              f"{'met' if c.get('unique_abs', 1.0) <= 0.1 else 'NOT met'}.", ""]
    for rep, title in (("C", "`C`, probe fitted on complete training features, test views removed via the mask"),
                       ("B", "backbone features: probe on `B_v` alone (train and test) vs `B_cat` "
                             "(reference protocol)")):
        lines += [f"### (b) logreg accuracy with one view only — {title}", "",
                  "| model | all views | " + " | ".join(f"only {n}" for n in names) + " | mean one-view | drop |",
                  "|---|---|" + "---|" * len(names) + "---|---|"]
        for label, r in (("DeCUR", dec), ("Barlow Twins (no split)", bt)):
            p = r["probes"][rep]
            lines.append(f"| {label} | {p['all']:.4f} | " + " | ".join(f"{a:.4f}" for a in p["one"])
                         + f" | {np.mean(p['one']):.4f} | {p['drop']:.4f} |")
        d, b = dec["probes"][rep]["drop"], bt["probes"][rep]["drop"]
        lines += ["", f"Claim (DeCUR loses less than Barlow Twins): {d:.4f} vs {b:.4f} → "
                  f"{'holds' if d < b else 'does NOT hold'}.", ""]
    lines.append(f"Training time: DeCUR {dec['train_seconds']} s, Barlow Twins {bt['train_seconds']} s.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("handwritten", "edge_fmnist"), default="handwritten")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "decur_claims")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for both models")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    common = [f"train.threads={args.threads}", "train.progress=never", "train.tensorboard=false", *args.overrides]
    out = args.out / args.data
    results = {"decur": train_and_measure("decur", args.data, common, out),
               "barlow": train_and_measure("barlow", args.data, [*common, "model.common_fraction=1.0"], out)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "claims.json").write_text(json.dumps(results, indent=2))
    print(markdown(results, args.data))


if __name__ == "__main__":
    main()

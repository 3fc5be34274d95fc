"""Missing-rate curves: how much of each method's complete-data quality survives incomplete training data.

Every method (``--methods``) is trained with its shipped config ``configs/<data>/<method>.yaml`` and
``data.missing_rate=r`` for each r in ``--rates`` (COMPLETER-style masks on the training split,
docs/evaluation.md#missing-views), once per training seed (``--seeds``), through :func:`viewsplit.bench.run_pair`:
runs go to ``OUT/rate<r>/<data>/<method>/seed<s>`` and a finished run (its ``metrics.json``) is
reused, so an interrupted benchmark continues where it stopped.  Evaluation is the standard one, on
the **complete** test data.  Each method is reported with one representation fixed in advance:
``C+V_all`` when the method has it, else ``Z_cat``, else ``C``, else the first it exposes (never
picked on test data).

Writes ``OUT/missing_rates-<data>.png`` (logistic-probe accuracy and k-means NMI against the rate,
one line per method, mean ± std over seeds), ``OUT/missing_rates-<data>.md`` and ``.json``, and
prints the table and the fraction of the rate-0 logistic-probe accuracy each method keeps at rate
0.5.  To save time the runs skip secondary clustering rows, image grids and all probes but
``logreg`` (override with ``eval.*=…``).  Needs matplotlib (``pip install -e ".[plots]"``).

    python benchmarks/missing_rates.py --data handwritten --seeds 3 --threads 2
    python benchmarks/missing_rates.py --methods fae,mrdd --rates 0,0.5 --seeds 1 'stages.*.epochs=1'

``key=value`` overrides apply to every run; ``stages.*.KEY=VALUE`` applies to each stage of each method;
``METHOD:key=value`` to that method's runs only (e.g. ``mib:model.start_iteration=250`` to rescale MIB's
step-indexed β schedule when ``data.train_limit`` shortens the epochs).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the representation reported per method: the first of these it has, else its first one
PREFERENCE = ("C+V_all", "Z_cat", "C")
PROBE = "logreg"


def stage_overrides(method: str, overrides: list[str]) -> list[str]:
    """``method``'s overrides: ``stages.*.KEY=VALUE`` becomes one per stage; ``METHOD:KEY=VALUE`` is kept
    (without the prefix) for that method only."""
    from viewsplit.methods import get_method

    stages = list(get_method(method).stage_defaults)
    out = []
    for item in overrides:
        target, sep, rest = item.partition(":")
        if sep and "=" not in target:
            if target != method:
                continue
            item = rest
        if item.startswith("stages.*."):
            out += [item.replace("stages.*.", f"stages.{s}.", 1) for s in stages]
        else:
            out.append(item)
    return out


def representation(agg: dict) -> str:
    """The fixed representation of a method: by name only (see :data:`PREFERENCE`)."""
    reps = list(agg["classification"])
    return next((r for r in PREFERENCE if r in reps), reps[0])


def curves(methods: list[str], data: str, rates: list[float], seeds: int, out: Path, overrides: list[str]) -> dict:
    """Train (or reuse) every run; per method and rate, the chosen representation's probe and k-means results."""
    from viewsplit.bench import aggregate, check_configs, run_pair

    check_configs([data], methods)
    table: dict = {}
    for m in methods:
        for r in rates:
            agg = aggregate(run_pair(data, m, seeds, out / f"rate{r:g}", [f"data.missing_rate={r}",
                                                                           *stage_overrides(m, overrides)]))
            rep = representation(agg)
            if PROBE not in agg["classification"][rep]:
                raise SystemExit(f"{m}: the config's eval.probes lack {PROBE!r}; add it (eval.probes=[{PROBE}])")
            table.setdefault(m, {})[f"{r:g}"] = {"representation": rep, "probe": agg["classification"][rep][PROBE],
                                                 "kmeans": agg["clustering"].get(rep, {}),
                                                 "train_seconds": agg["train_seconds"]["mean"]}
    return table


def kept(rows: dict, rate: str) -> float | None:
    """Probe accuracy at ``rate`` over that at rate 0 (None when either was not run)."""
    if "0" not in rows or rate not in rows:
        return None
    return rows[rate]["probe"]["mean"] / rows["0"]["probe"]["mean"]


def markdown(table: dict, data: str, seeds: int) -> str:
    lines = [f"# Missing-rate curves on {data} ({seeds} training seeds; mean ± std over seeds)", "",
             "Training data with `data.missing_rate` = rate; evaluation on complete test data.  "
             f"`{PROBE}` probe accuracy; kept = accuracy / accuracy at rate 0.", "",
             f"| method | representation | rate | {PROBE} acc | kept | k-means ACC | NMI | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for m, rows in table.items():
        for rate, row in rows.items():
            p, c, k = row["probe"], row["kmeans"], kept(rows, rate)
            clus = [f"{c[x]['mean']:.4f} ± {c[x]['std']:.4f}" for x in ("acc", "nmi")] if c else ["–", "–"]
            lines.append(f"| {m} | {row['representation']} | {rate} | {p['mean']:.4f} ± {p['std']:.4f} | "
                         f"{'–' if k is None else f'{k:.3f}'} | " + " | ".join(clus)
                         + f" | {row['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(table: dict, data: str, path: Path) -> None:
    """Probe accuracy and k-means NMI against the missing rate, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for m, rows in table.items():
        rates = [float(r) for r in rows]
        label = f"{m} ({next(iter(rows.values()))['representation']})"
        for ax, get in ((axes[0], lambda row: row["probe"]), (axes[1], lambda row: row["kmeans"].get("nmi"))):
            vals = [get(row) for row in rows.values()]
            if all(v is not None for v in vals):
                ax.errorbar(rates, [v["mean"] for v in vals], yerr=[v["std"] for v in vals], marker="o", capsize=3,
                            label=label)
    for ax, title in zip(axes, (f"{PROBE} probe accuracy", "k-means NMI")):
        ax.set_xlabel("training missing rate")
        ax.set_title(f"{title} ({data}, complete test data)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="mrdd,mib,decur,softcca,fae,dcca,autoencoder")
    ap.add_argument("--data", choices=("handwritten", "edge_fmnist"), default="handwritten")
    ap.add_argument("--rates", default="0,0.1,0.3,0.5", help="comma-separated missing rates")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds 0 … N−1 per method and rate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "missing_rates")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for every run (stages.*.KEY for every stage)")
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    rates = sorted({float(r) for r in args.rates.split(",")})
    common = [f"train.threads={args.threads}", "train.tensorboard=false", "eval.secondary_splits=[]",
              "eval.figures=false", f"eval.probes=[{PROBE}]", *args.overrides]
    with threadpool_limits(args.threads):
        table = curves(args.methods.split(","), args.data, rates, args.seeds, args.out, common)
    stem = args.out / f"missing_rates-{args.data}"
    md = markdown(table, args.data, args.seeds)
    stem.with_suffix(".json").write_text(json.dumps(table, indent=2))
    stem.with_suffix(".md").write_text(md)
    plot(table, args.data, stem.with_suffix(".png"))
    print(md)
    for m, rows in table.items():
        k = kept(rows, "0.5")
        print(f"{m}: keeps {'–' if k is None else f'{k:.1%}'} of its complete-data {PROBE} accuracy at rate 0.5"
              + ("" if k is not None else " (needs rates 0 and 0.5)"))
    print(f"figure: {stem}.png; tables: {stem}.md, {stem}.json")


if __name__ == "__main__":
    main()

"""``viewsplit bench``: train and evaluate every (data set, method) pair over several seeds.

For each pair the shipped config ``configs/<data set>/<method>.yaml`` is run once per training
seed (``train.seed = 0 … seeds−1``; the data split stays fixed) into
``OUT/<data set>/<method>/seed<s>``.  A finished seed (its ``metrics.json`` exists) is reused, so
an interrupted benchmark continues where it stopped.  Results: ``OUT/bench.json`` and
``OUT/bench.md`` with mean ± std over seeds of k-means ACC/NMI/ARI (each itself a mean over
k-means seeds), probe accuracies per representation, the training time, the baseline rows (once per
data set) and each method's best learned representation against the best baseline.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .config import CONFIG_DIR, load_config
from .engine.logger import duration
from .errors import ConfigError, ViewsplitError

log = logging.getLogger(__name__)


def config_path(dataset: str, method: str) -> Path:
    path = CONFIG_DIR / dataset / f"{method}.yaml"
    if not path.exists():
        have = sorted(p.stem for p in (CONFIG_DIR / dataset).glob("*.yaml")) if (CONFIG_DIR / dataset).is_dir() else []
        raise ConfigError(f"no shipped config {dataset}/{method}.yaml; {dataset} has: {', '.join(have) or 'none'}")
    return path


def method_overrides(method: str, overrides: list[str], methods: list[str]) -> list[str]:
    """The overrides for ``method``: every plain ``key=value``, and ``METHOD:key=value`` where METHOD is it."""
    out = []
    for item in overrides:
        key, eq, value = item.partition("=")
        if ":" not in key:
            out.append(item)
            continue
        target, _, key = key.partition(":")
        if target not in methods:
            raise ConfigError(f"override {item!r}: {target!r} is not one of the benchmarked methods {methods}")
        if target == method:
            out.append(f"{key}{eq}{value}")
    return out


def check_configs(datasets: list[str], methods: list[str], overrides: Sequence[str] = ()) -> None:
    """Fail before training anything: every shipped config must exist and accept its overrides, and every
    evaluation setting must suit the method and data (each pair's data is loaded and its model built)."""
    from .engine.run import prepare
    from .eval.checks import check_evaluable

    for d in datasets:
        for m in methods:
            try:
                cfg = load_config(config_path(d, m), method_overrides(m, list(overrides), methods))
                run = prepare(cfg, Path("."))
                check_evaluable(run.method, run.splits, cfg.eval)
            except ViewsplitError as err:
                raise type(err)(f"bench {d}/{m}: {err}") from None


def run_pair(dataset: str, method: str, seeds: int, out: Path, overrides: list[str]) -> list[dict]:
    """Train and evaluate one (data set, method) pair for every seed, reusing finished seeds."""
    from .engine.run import run_all

    results = []
    for s in range(seeds):
        folder = out / dataset / method / f"seed{s}"
        done = folder / "metrics.json"
        if done.exists():
            log.info(f"bench {dataset}/{method} seed {s + 1}/{seeds}: finished before, reusing {done}")
        else:
            log.info(f"bench {dataset}/{method} seed {s + 1}/{seeds}: training into {folder}")
            t0 = time.perf_counter()
            # no per-seed pictures unless asked for (eval.plots=true): a bench is for its table
            cfg = load_config(config_path(dataset, method), [f"train.seed={s}", "eval.plots=false", *overrides])
            resume = (folder / "checkpoints" / "last.pt").exists()
            run_all(cfg, folder, resume=resume)
            log.info(f"bench {dataset}/{method} seed {s + 1}/{seeds}: done in {duration(time.perf_counter() - t0)}")
        results.append(json.loads(done.read_text()))
    return results


def _ms(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "per_seed": [float(v) for v in a]}


def aggregate(runs: list[dict]) -> dict:
    """Mean ± std over training seeds of every clustering metric, probe accuracy and the timing.

    Only representations and probes that every seed evaluated are kept (seeds evaluated with
    different ``eval.*`` overrides differ), so no mean mixes different numbers of seeds.
    """
    first = runs[0]
    out = {"split": first["split"], "clustering": {}, "classification": {},
           "train_seconds": _ms([r["timing"].get("train_seconds", float("nan")) for r in runs])}
    for rep in first.get("clustering", {}):
        if all(rep in r.get("clustering", {}) for r in runs):
            out["clustering"][rep] = {m: _ms([r["clustering"][rep][m]["mean"] for r in runs])
                                      for m in ("acc", "nmi", "ari")}
    for rep, probes in first.get("classification", {}).items():
        shared = [p for p in probes if all(p in r.get("classification", {}).get(rep, {}) for r in runs)]
        if shared:
            out["classification"][rep] = {p: _ms([r["classification"][rep][p]["acc"] for r in runs]) for p in shared}
    summary = {}
    for metric in first.get("summary", {}):
        per_seed = [r["summary"][metric] for r in runs if metric in r.get("summary", {})]
        if len(per_seed) == len(runs):
            summary[metric] = {"learned": sorted({s["learned"] for s in per_seed}),
                               "baseline": sorted({s["baseline"] for s in per_seed}),
                               **{k: _ms([s[k] for s in per_seed])
                                  for k in ("learned_value", "baseline_value", "margin")}}
    out["summary"] = summary
    return out


def _pm(d: dict) -> str:
    return f"{d['mean']:.4f} ± {d['std']:.4f}"


def markdown(table: dict, seeds: int) -> str:
    """Per data set: the learned representations of every method, the baseline rows once (they do not depend on
    the method's weights), and each method's best learned representation against the best baseline."""
    from .eval.baselines import is_baseline

    lines = [f"# viewsplit bench ({seeds} training seeds; mean ± std over seeds)", ""]
    for dataset, methods in table.items():
        lines += [f"## {dataset}", ""]
        probes = sorted({p for m in methods.values() for r in m["classification"].values() for p in r})
        head = ["| {} | representation | k-means ACC | NMI | ARI | " + " | ".join(probes) + " |{}",
                "|---" * (5 + len(probes)) + "|{}"]

        def row(agg: dict, rep: str, probes: list[str] = probes) -> list[str]:
            c = agg["clustering"].get(rep)
            cl = [_pm(c[m]) for m in ("acc", "nmi", "ari")] if c else ["–"] * 3
            return cl + [_pm(agg["classification"][rep][p]) if p in agg["classification"].get(rep, {}) else "–"
                         for p in probes]

        lines += [head[0].format("method", " train s |"), head[1].format("---|")]
        baselines: dict[str, list[str]] = {}
        for method, agg in methods.items():
            for rep in dict.fromkeys([*agg["clustering"], *agg["classification"]]):
                if is_baseline(rep):
                    baselines.setdefault(rep, row(agg, rep))
                else:
                    lines.append(f"| {method} | {rep} | " + " | ".join(row(agg, rep))
                                 + f" | {agg['train_seconds']['mean']:.0f} |")
        if baselines:
            lines += ["", "Baselines (the input views standardised and as given, PCA and linear (G)CCA with as many "
                      "dims as the method's consistent code; the same for every method and seed):", "",
                      head[0].format("", ""), head[1].format("")]
            lines += [f"| | {rep} | " + " | ".join(r) + " |" for rep, r in baselines.items()]
        summary = [(method, metric, s) for method, agg in methods.items()
                   for metric, s in agg.get("summary", {}).items()]
        if summary:
            lines += ["", "Best learned representation against the best baseline (margin > 0: learning beat every "
                      "baseline):", "", "| method | metric | best learned | best baseline | margin |",
                      "|---|---|---|---|---|"]
            lines += [f"| {method} | {metric} | {'/'.join(s['learned'])} {_pm(s['learned_value'])} | "
                      f"{'/'.join(s['baseline'])} {_pm(s['baseline_value'])} | {s['margin']['mean']:+.4f} ± "
                      f"{s['margin']['std']:.4f} |" for method, metric, s in summary]
        lines.append("")
    return "\n".join(lines)


def bench(methods: list[str], datasets: list[str], seeds: int, out: str | Path, overrides: Sequence[str] = ()
          ) -> dict:
    """Train and evaluate every (data set, method) pair over ``seeds`` training seeds into ``out``; return the
    table (also written to ``out/bench.json`` and ``out/bench.md``).  Every pair is checked before any trains."""
    if seeds < 1:
        raise ConfigError(f"--seeds: need at least 1 training seed, got {seeds}")
    out = Path(out)
    check_configs(datasets, methods, overrides)
    table: dict = {}
    for d in datasets:
        for m in methods:
            runs = run_pair(d, m, seeds, out, method_overrides(m, list(overrides), methods))
            table.setdefault(d, {})[m] = aggregate(runs)
            (out / "bench.json").write_text(json.dumps(table, indent=2))
            (out / "bench.md").write_text(markdown(table, seeds))
    return table

"""Training and evaluation time with viewsplit's default threads against explicit ones, on an idle machine
and with two CPU-bound background processes (issue 32).

Each setting is one fresh ``viewsplit run`` of the shipped Handwritten MRDD preset, shortened
(``--epochs``), with the baseline-row cache off so every evaluation does the same work; the times are the
run's own ``train_seconds`` and ``eval_seconds``.  Settings: the default (no ``train.threads``: one
thread for vector views; OpenMP waits passively), ``train.threads=1`` and ``=2``, and the behaviour before
issue 32 (torch's default of 2 threads on this machine, OpenMP threads spinning), for reference.  The
busy phase starts two ``while True`` processes (each stopped by this script, and by itself after
``--max-load-seconds``).
Settings alternate in order over ``--repeats``; the table prints medians and the ratio of the default to
the best explicit setting (targets: ≤ 1.10 idle, ≤ 1.30 busy).  Run it alone: other work on the
cores is a background load of its own.

    python benchmarks/busy_machine.py [--epochs 4] [--repeats 2] [--phases idle,busy]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"default": ([], {}), "threads=1": (["train.threads=1"], {}), "threads=2": (["train.threads=2"], {}),
            "before: 2 threads, spinning": (["train.threads=2"], {"OMP_WAIT_POLICY": "ACTIVE"})}
SPIN = "import time\nend = time.time() + {limit}\nwhile time.time() < end:\n    pass\n"


def one_run(name: str, epochs: int, out: Path) -> tuple[float, float, float]:
    """Train + evaluate once; (train seconds, eval seconds, wall seconds)."""
    overrides, env = SETTINGS[name]
    cmd = [sys.executable, "-m", "viewsplit", "run", str(REPO / "configs" / "handwritten" / "mrdd.yaml"),
           f"stages.consistency.epochs={epochs}", f"stages.disentangle.epochs={epochs}", "eval.plots=false",
           "eval.raw_baseline_cache=false", "train.progress=never", *overrides, "--out", str(out)]
    full_env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    t = time.perf_counter()
    proc = subprocess.run(cmd, env={**full_env, **env}, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.exit(f"{name}: {proc.stderr[-2000:]}")
    timing = json.loads((out / "metrics.json").read_text())["timing"]
    return timing["train_seconds"], timing["eval_seconds"], wall


def phase(busy: bool, epochs: int, repeats: int, limit: float, tmp: Path) -> dict[str, list[tuple]]:
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN.format(limit=limit)]) for _ in range(2 if busy else 0)]
    results: dict[str, list[tuple]] = {n: [] for n in SETTINGS}
    try:
        for r in range(repeats):
            order = list(SETTINGS) if r % 2 == 0 else list(reversed(SETTINGS))
            for name in order:
                out = tmp / f"{'busy' if busy else 'idle'}-{r}-{name.split()[0].replace('=', '')}"
                results[name].append(one_run(name, epochs, out))
                print(f"  {'busy' if busy else 'idle'} {name}: train {results[name][-1][0]:.1f} s, "
                      f"eval {results[name][-1][1]:.1f} s", flush=True)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    return results


def table(label: str, results: dict[str, list[tuple]]) -> list[str]:
    med = {n: [statistics.median(r[i] for r in rs) for i in range(3)] for n, rs in results.items()}
    explicit = [n for n in med if n.startswith("threads=")]
    lines = [f"### {label}", "", "| setting | train s | eval s | train + eval s | vs best explicit |",
             "|---|---|---|---|---|"]
    best = min(med[n][0] + med[n][1] for n in explicit)
    for n, (tr, ev, _) in med.items():
        lines.append(f"| {n} | {tr:.1f} | {ev:.1f} | {tr + ev:.1f} | {(tr + ev) / best:.2f}× |")
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4, help="epochs of each MRDD stage")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--phases", default="idle,busy")
    ap.add_argument("--max-load-seconds", type=float, default=3600, help="the background processes stop by then")
    args = ap.parse_args()
    print(f"usable CPUs: {len(os.sched_getaffinity(0))}; load before: {os.getloadavg()[0]:.2f}", flush=True)
    lines = []
    with tempfile.TemporaryDirectory(prefix="busy-machine-") as tmp:
        for name in args.phases.split(","):
            print(f"{name} phase", flush=True)
            results = phase(name == "busy", args.epochs, args.repeats, args.max_load_seconds, Path(tmp))
            lines += table(f"{name} machine{' (2 CPU-bound background processes)' if name == 'busy' else ''}, "
                           f"median of {args.repeats}", results)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

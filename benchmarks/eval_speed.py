"""Wall-clock time of ``viewsplit eval`` on a trained run, protocol by protocol, side by side (issue 23).

Each protocol runs ``viewsplit eval RUN --out TMP OVERRIDES`` in a fresh process (so its time includes
Python start-up, loading the data and the model, and writing the report), one after the other:

* ``issue``: the issue's full protocol: the 5 representations (C, V_0, V_1, C+V_best, C+V_all),
  10 k-means seeds of 10 inits on the test split, the three probes (logistic, linear SVM, kNN) fitted
  on all training samples, plus what the report always has (held-out redundancy, missing-view
  prediction); no train-split clustering row, no raw-view rows;
* ``preset``: the run's own ``eval`` settings, as ``viewsplit run`` evaluates (for the Edge-FMNIST
  preset: also the train-split clustering row and the raw-view baselines);
* ``sklearn``: ``issue`` with scikit-learn's k-means and linear probes (``eval.kmeans_solver=sklearn
  eval.probe_solver=sklearn``), for the speed-up and to compare the scores (slow: 10+ minutes).

The phases come from the evaluation's progress lines: the time from one line to the next counts for
the phase the first one starts (load + extract before the first line).  A trained run is needed, e.g.
``viewsplit run configs/edge_fmnist/mrdd.yaml stages.consistency.epochs=1 stages.disentangle.epochs=1
eval.plots=false --out RUN`` (the scores do not matter for timing; the cost does not depend on the weights).

    python benchmarks/eval_speed.py RUN [--protocols issue,preset] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROTOCOLS = {
    "issue": ["eval.secondary_splits=[]", "eval.raw_baselines=false"],
    "preset": [],
    "sklearn": ["eval.secondary_splits=[]", "eval.raw_baselines=false", "eval.kmeans_solver=sklearn",
                "eval.probe_solver=sklearn"],
}


def phase(line: str) -> str | None:
    """The evaluation phase a progress line starts (None: not a progress line)."""
    if "eval: " not in line:
        return None
    if " on raw_" in line:
        return "raw baselines"
    if "eval: k-means" in line:
        return "k-means (train split)" if "(train split" in line else "k-means"
    for key, name in (("eval: probe", "probes"), ("eval: redundancy", "redundancy"),
                      ("eval: missing-view", "prediction")):
        if key in line:
            return name
    return "other"


def run(run_dir: str, overrides: list[str], threads: int) -> tuple[float, dict[str, float], dict]:
    """Seconds, seconds per phase and metrics.json of one ``viewsplit eval`` in a fresh process."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    with tempfile.TemporaryDirectory(prefix="eval-speed-") as out:
        cmd = [sys.executable, "-c", f"import torch, sys; torch.set_num_threads({threads}); "
               "from viewsplit.cli import main; sys.exit(main(sys.argv[1:]))",
               "eval", run_dir, "--out", out, "eval.plots=false", "eval.figures=false", *overrides]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        phases: dict[str, float] = {}
        current, since, tail = "load + extract", 0.0, []
        for line in proc.stderr:
            tail = [*tail[-20:], line]
            now, name = time.perf_counter() - t0, phase(line)
            if name is not None and name != current:
                phases[current] = phases.get(current, 0.0) + now - since
                current, since = name, now
        seconds = time.perf_counter() - t0
        phases[current] = phases.get(current, 0.0) + seconds - since
        if proc.wait():
            sys.exit("".join(tail))
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    return seconds, phases, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--protocols", default="issue,preset", help=f"comma-separated, of {list(PROTOCOLS)}")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = []
    for name in args.protocols.split(","):
        seconds, phases, m = run(args.run_dir, PROTOCOLS[name], args.threads)
        nmi = m["clustering"]["C"]["nmi"]["mean"]
        probe = m["classification"]["C+V_all"]["logreg"]["acc"]
        rows.append((name, seconds, phases, nmi, probe))
        print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    columns = list(dict.fromkeys(p for row in rows for p in row[2]))
    print(f"`viewsplit eval` of {args.run_dir}, {args.threads} threads; seconds per phase (the last includes writing "
          "the report); ratio = seconds / the first row's\n")
    print("| protocol | seconds | ratio | " + " | ".join(columns) + " | C k-means NMI | C+V_all logreg |")
    print("|---" * (len(columns) + 5) + "|")
    for name, seconds, phases, nmi, probe in rows:
        print(f"| {name} | {seconds:.1f} | {seconds / rows[0][1]:.2f} | "
              + " | ".join(f"{phases.get(c, 0.0):.1f}" for c in columns) + f" | {nmi:.4f} | {probe:.4f} |")


if __name__ == "__main__":
    main()

"""In-memory vs on-disk (memory-mapped, streamed) training data: peak memory and throughput, side by side.

For each ``--samples`` N, a 2-view set of 1×32×32 uint8 images (seeded, random pixels; 10 labels)
is written as a folder with ``viewsplit.data.convert.write_folder`` in chunks, then each
``--modes`` entry trains MRDD stage 1 (the Edge-FMNIST CPU preset, configs/edge_fmnist/mrdd.yaml)
for ``--steps`` optimiser steps of ``--batch`` samples in a fresh subprocess:

* ``memory``: ``data.stream=false``, the folder read into tensors (today's path);
* ``disk``: ``data.stream=true``, batches gathered from the mapped files by a prefetch thread.

Each child reports its peak RSS (``VmHWM``: its own memory, mapped file pages included) and
the samples/s of the steps after the first ``--warmup``.  By default the page cache is not dropped:
at 50k the files (100 MB) are cached, at 1M (2 GB) mostly too on a 24 GB machine, so
the disk column measures the gather and the prefetch, not the drive.  ``--drop-cache`` (root) drops it
before each training child, so the disk path starts cold (the page-cache column says which).

With ``--encode-eval``, the ``disk`` child also saves its model as a run folder (``checkpoints/final.pt``
and ``config.yaml``, data: the folder, streamed), and two more fresh processes are timed on it:
``viewsplit encode RUN --data FOLDER --out FEATS/`` (every sample, folder in, one float32 .npy per
representation out, batch by batch) and ``viewsplit eval RUN`` with ``--eval-overrides`` (default: the
reduced protocol, 3 k-means seeds on the test split and the logistic probe, raw-view baselines included;
no train-split clustering row and no redundancy read-outs: with them, the 20k check's evaluation took
911 s instead of 80 s on the shared machine).  ``eval.max_samples`` caps what each split contributes
(100,000 by default), so at 1M the evaluation sees a seeded 100k of the 900k training samples.  Each step
reports its wall-clock seconds (process start to exit, imports included) and its peak RSS (VmHWM).

    python benchmarks/stream_memory.py --samples 20000 --steps 20          # a quick check
    python benchmarks/stream_memory.py --samples 20000 --steps 20 --encode-eval   # … with encode and eval
    python benchmarks/stream_memory.py --samples 50000,1000000 --steps 200 --threads 2   # the issue's targets
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_folder(path: Path, n: int, chunk: int = 50_000) -> Path:
    """A 2-view folder of N seeded 1×32×32 uint8 image pairs (train: the first 90 %)."""
    from viewsplit.data.convert import write_folder

    if (path / "view1.npy").exists():
        return path

    def images(view: int):
        def read():
            for start in range(0, n, chunk):
                rng = np.random.default_rng([view, start])
                yield rng.integers(0, 256, (min(chunk, n - start), 1, 32, 32), dtype=np.uint8)
        return read

    n_tr = int(0.9 * n)
    labels = np.random.default_rng(n).integers(0, 10, n)
    arrays = {f"view{v}": ((n, 1, 32, 32), np.dtype(np.uint8), images(v)) for v in range(2)}
    arrays["labels"] = ((n,), np.dtype(np.int64), lambda: [labels])
    arrays["train_index"] = ((n_tr,), np.dtype(np.int64), lambda: [np.arange(n_tr)])
    arrays["test_index"] = ((n - n_tr,), np.dtype(np.int64), lambda: [np.arange(n_tr, n)])
    return write_folder(path, arrays)


def drop_page_cache() -> bool:
    """Write back dirty pages and drop the page cache (needs root); False when not permitted."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (``ru_maxrss`` would include the parent's peak at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(folder: str, mode: str, steps: int, batch: int, warmup: int, threads: int, save: str | None = None) -> dict:
    """Train MRDD stage 1 for ``steps`` steps on ``folder``; time and memory of this process.  With ``save``,
    write the model as a run folder there (``checkpoints/final.pt``, ``config.yaml``) for encode and eval."""
    import torch

    from viewsplit.config import CONFIG_DIR, load_config
    from viewsplit.data.registry import load_dataset
    from viewsplit.engine.trainer import make_optimizer
    from viewsplit.methods import build_method
    from viewsplit.methods.base import DataSpec

    torch.set_num_threads(threads)
    cfg = load_config(CONFIG_DIR / "edge_fmnist" / "mrdd.yaml",
                      ["data.name=folder", f"data.path={folder}", f"data.stream={mode == 'disk'}"])
    train = load_dataset(cfg.data).train
    rss_loaded = peak_rss_mb()
    torch.manual_seed(0)
    method = build_method(cfg.method, cfg.model, DataSpec.of(train)).train()
    stage = method.stage("consistency")
    opts = [make_optimizer(s, cfg.stages["consistency"]) for s in stage.steps]
    batches = islice(train.batches(batch, shuffle=True, seed=0, drop_last=True), steps)
    t0, waited = 0.0, 0.0
    for i in range(steps):
        if i == warmup:
            t0 = time.perf_counter()
        asked = time.perf_counter()
        b = next(batches)
        if i >= warmup:
            waited += time.perf_counter() - asked
        for step, opt in zip(stage.steps, opts):
            opt.zero_grad(set_to_none=True)
            step.loss(b)["objective"].backward()
            opt.step()
    seconds = time.perf_counter() - t0
    out = {"samples": len(train), "mode": mode, "samples_per_s": (steps - warmup) * batch / seconds,
           "wait_share": waited / seconds, "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak_rss_mb()}
    if save:
        from viewsplit.engine import checkpoint as ckpt

        (Path(save) / "checkpoints").mkdir(parents=True, exist_ok=True)
        cfg.save(Path(save) / "config.yaml")
        ckpt.atomic_save(ckpt.model_state(cfg, method.eval()), Path(save) / "checkpoints" / "final.pt")
    return out


def measure_cli(argv: list[str], threads: int) -> dict:
    """Run ``viewsplit ARGV`` in this (fresh) process; its exit code, seconds and peak RSS (VmHWM)."""
    import torch

    from viewsplit.cli import main as viewsplit

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    rc = viewsplit(argv)
    return {"rc": rc, "seconds_in_process": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}


def timed(argv: list[str], threads: int) -> dict:
    """:func:`measure_cli` in a fresh subprocess; adds the wall-clock seconds from start to exit."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--threads", str(threads), "--cli", *argv]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise SystemExit(f"viewsplit {' '.join(argv)} exited with {res['rc']}:\n{out.stderr[-3000:]}")
    return {**res, "seconds": seconds}


def encode_eval(folder: Path, run: Path, n: int, threads: int, overrides: list[str]) -> list[dict]:
    """Time ``viewsplit encode`` (folder in, folder out) and ``viewsplit eval`` on the saved run."""
    feats = run / "features"
    shutil.rmtree(feats, ignore_errors=True)
    enc = timed(["encode", str(run), "--data", str(folder), "--out", str(feats)], threads)
    files = sorted(feats.glob("*.npy"))
    dims = {p.stem: np.load(p, mmap_mode="r").shape for p in files}
    if any(s[0] != n for s in dims.values()):
        raise SystemExit(f"{feats}: expected {n} rows in every file, got {dims}")
    size_mb = sum(p.stat().st_size for p in files) / 2**20
    shutil.rmtree(feats)   # up to GBs at 1M samples; only its size is reported
    ev = timed(["eval", str(run), *overrides], threads)
    proto = json.loads((run / "metrics.json").read_text())["protocol"]
    evaluated = "; ".join(f"{s}: {r}" for s, r in proto["samples"].items() if s != "max_samples")
    return [{"samples": n, "step": "encode", **enc,
             "what": f"{n} samples → {len(files)} .npy ({', '.join(f'{k} {s[1]}' for k, s in dims.items())}; "
                     f"{size_mb:.0f} MB)"},
            {"samples": n, "step": "eval", **ev, "what": evaluated}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", default="50000,1000000", help="comma-separated set sizes")
    ap.add_argument("--modes", default="memory,disk")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=REPO / "runs" / "stream_memory")
    ap.add_argument("--repeats", type=int, default=1,
                    help="train each mode this many times per size, alternating their order; prints the paired ratios")
    ap.add_argument("--drop-cache", action="store_true",
                    help="drop the page cache before each training child (needs root), so the disk path starts cold")
    ap.add_argument("--encode-eval", action="store_true",
                    help="also time viewsplit encode and viewsplit eval on the disk-mode model at each size")
    ap.add_argument("--eval-overrides",
                    default="eval.kmeans_seeds=3 eval.probes=[logreg] eval.secondary_splits=[] eval.redundancy=false",
                    help="eval.* overrides of the timed viewsplit eval, space-separated")
    ap.add_argument("--child", nargs=2, metavar=("FOLDER", "MODE"), help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    ap.add_argument("--cli", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cli:
        print(json.dumps(measure_cli(args.cli, args.threads)))
        return
    if args.steps <= args.warmup:
        ap.error("--steps must exceed --warmup")
    if args.child:
        print(json.dumps(child(*args.child, args.steps, args.batch, args.warmup, args.threads, args.save)))
        return
    if args.encode_eval and "disk" not in args.modes.split(","):
        ap.error("--encode-eval times the disk-mode model: include disk in --modes")
    rows, steps = [], []
    for n in (int(s) for s in args.samples.split(",")):
        t = time.perf_counter()
        folder = make_folder(args.workdir / f"pairs-{n}", n)
        print(f"{folder}: {n} samples ({time.perf_counter() - t:.0f} s to write or find)", file=sys.stderr)
        run = args.workdir / f"run-{n}"
        for rep in range(args.repeats):
            modes = args.modes.split(",")
            for mode in modes if rep % 2 == 0 else modes[::-1]:   # alternate the order against drift
                cmd = [sys.executable, __file__, "--child", str(folder), mode, "--steps", str(args.steps), "--warmup",
                       str(args.warmup), "--batch", str(args.batch), "--threads", str(args.threads)]
                if args.encode_eval and mode == "disk" and rep == 0:
                    shutil.rmtree(run, ignore_errors=True)
                    cmd += ["--save", str(run)]
                cold = args.drop_cache and drop_page_cache()
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
                rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "repeat": rep,
                             "cache": "dropped" if cold else "warm"})
                print(rows[-1], file=sys.stderr)
        if args.encode_eval:
            steps += encode_eval(folder, run, n, args.threads, args.eval_overrides.split())
            print(steps[-2:], file=sys.stderr)
    print_training(rows, args)
    if steps:
        print_steps(steps, args.eval_overrides, args.threads)


def print_training(rows: list[dict], args: argparse.Namespace) -> None:
    """The training table (one row per child), then, with repeats, the paired disk / memory ratios."""
    base = {r["mode"]: r for r in rows if r["samples"] == rows[0]["samples"] and r["repeat"] == 0}
    print(f"MRDD stage 1 (Edge-FMNIST CPU preset), {args.steps - args.warmup} timed steps of {args.batch} samples, "
          f"{args.threads} thread(s); ratios against the first size's row of the same mode, and disk against "
          "memory at the same size and repeat; 'waiting' is the share of the timed steps the loop spent waiting "
          "for its next batch\n")
    print("| train samples | repeat | data path | page cache | samples/s | disk / memory | waiting "
          "| RSS after loading (MB) | peak RSS (MB) | peak RSS vs smallest set |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ratios: dict[int, list[float]] = {}
    for r in rows:
        mem = next((m for m in rows if m["samples"] == r["samples"] and m["repeat"] == r["repeat"]
                    and m["mode"] == "memory"), None)
        speed = ""
        if mem and r["mode"] == "disk":
            ratios.setdefault(r["samples"], []).append(r["samples_per_s"] / mem["samples_per_s"])
            speed = f"{ratios[r['samples']][-1]:.2f}"
        ref = base.get(r["mode"])
        grow = f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}× ({r['peak_rss_mb'] - ref['peak_rss_mb']:+.0f} MB)" \
            if ref else ""
        print(f"| {r['samples']} | {r['repeat']} | {r['mode']} | {r['cache']} | {r['samples_per_s']:.0f} | {speed} | "
              f"{100 * r['wait_share']:.1f} % | {r['rss_after_load_mb']:.0f} | {r['peak_rss_mb']:.0f} | {grow} |")
    if args.repeats > 1:
        print("\n| train samples | disk / memory per repeat | mean ± std | median |\n|---|---|---|---|")
        for n, rs in ratios.items():
            print(f"| {n} | {', '.join(f'{x:.2f}' for x in rs)} | {np.mean(rs):.2f} ± {np.std(rs, ddof=1):.2f} "
                  f"| {np.median(rs):.2f} |")


def print_steps(steps: list[dict], overrides: str, threads: int) -> None:
    """The encode / eval table: seconds and peak RSS per set size, RSS against the smallest set's."""
    print(f"\nviewsplit encode (folder in, folder out) and viewsplit eval ({overrides}) of the disk-mode model, "
          f"each in a fresh process, {threads} thread(s); wall-clock seconds from process start to exit\n")
    print("| set samples | step | what | seconds | peak RSS (MB) | peak RSS vs smallest set |")
    print("|---|---|---|---|---|---|")
    first = {}
    for r in steps:
        ref = first.setdefault(r["step"], r)
        grow = f"{r['peak_rss_mb'] / ref['peak_rss_mb']:.2f}× ({r['peak_rss_mb'] - ref['peak_rss_mb']:+.0f} MB)"
        print(f"| {r['samples']} | {r['step']} | {r['what']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {grow} |")


if __name__ == "__main__":
    main()

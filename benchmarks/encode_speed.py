"""Wall-clock time of ``viewsplit encode`` on every Edge-FMNIST image (60k train + 10k test), issue 21.

The model is the shipped preset's network (``--config``, default the Edge-FMNIST MRDD CPU preset)
with its initial weights, saved as a model file: encoding costs the same whatever the weights'
values, so no training is needed.  ``--model`` times a trained run folder or model file instead.
The images go to an npz in the views' stored form (uint8), as a user would hand them over; the
command runs in a fresh process, so its time includes Python start-up, loading and writing.

    python benchmarks/encode_speed.py [--threads 2] [--limit N] [--model RUN_OR_MODEL]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "edge_fmnist" / "mrdd.yaml"))
    ap.add_argument("--model", help="a trained run folder or model file (default: the preset, initial weights)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, help="only the first N images (a quick check)")
    args = ap.parse_args()

    from viewsplit.config import load_config
    from viewsplit.data.multiview import concat
    from viewsplit.data.registry import load_dataset
    from viewsplit.engine import checkpoint as ckpt
    from viewsplit.engine.run import build

    cfg = load_config(args.config)
    splits = load_dataset(cfg.data)
    data = concat(splits.train, splits.test)
    n = min(args.limit or len(data), len(data))
    with tempfile.TemporaryDirectory(prefix="encode-speed-") as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / "model.pt"
            ckpt.atomic_save(ckpt.model_state(cfg, build(cfg, splits.train)), model)
        npz = Path(tmp) / "images.npz"
        np.savez(npz, **{f"view{v}": x[:n].numpy() for v, x in enumerate(data.views)})
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(REPO))
        cmd = [sys.executable, "-c", f"import torch, sys; torch.set_num_threads({args.threads}); "
               "from viewsplit.cli import main; sys.exit(main(sys.argv[1:]))",
               "encode", str(model), "--data", str(npz), "--out", str(Path(tmp) / "feats.npz")]
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if proc.returncode:
            sys.exit(proc.stderr)
        print(proc.stdout.strip())
    print(f"| images | views | threads | wall-clock s | images/s |\n|---|---|---|---|---|\n"
          f"| {n} | {data.n_views} | {args.threads} | {seconds:.1f} | {n / seconds:.0f} |")


if __name__ == "__main__":
    main()

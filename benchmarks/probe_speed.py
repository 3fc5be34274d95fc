"""The evaluation probes and k-means, scikit-learn vs viewsplit's solvers, side by side on the same features.

Features: a fixed random ReLU map of the Fashion-MNIST pixels (``--dim`` wide, standardised by
each probe as in the evaluation), fitted on the first ``--train`` training images and scored on
the 10k test images; without the Debian ``dataset-fashion-mnist`` files, a seeded 10-class
Gaussian mixture of the same size.  Each probe runs once per solver in this process, so the two
columns share the machine's load; the ratio is sklearn seconds / torch seconds.  k-means
(``--kmeans-seeds`` seeds, ``n_init`` 10, eval.kmeans_solver sklearn vs torch) runs on the test
features (full fit) and on the training features (fit on a seeded ``--kmeans-fit`` subsample,
eval.kmeans_fit_samples, every point assigned).

    python benchmarks/probe_speed.py [--train 60000] [--dim 522] [--threads 1] [--probes logreg,linear_svm]
                                     [--kmeans-seeds 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def features(n_train: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    rng = np.random.default_rng(seed)
    if (FMNIST / "train-images-idx3-ubyte.gz").exists():
        from viewsplit.data.edge_mnist import read_idx

        def read(split: str) -> tuple[np.ndarray, np.ndarray]:
            return (read_idx(FMNIST / f"{split}-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0,
                    read_idx(FMNIST / f"{split}-labels-idx1-ubyte.gz").astype(np.int64))

        (xtr, ytr), (xte, yte) = read("train"), read("t10k")
        proj = rng.normal(size=(784, dim)) * (3.0 / np.sqrt(784))
        return (np.maximum(xtr[:n_train] @ proj, 0), ytr[:n_train], np.maximum(xte @ proj, 0), yte,
                f"Fashion-MNIST, random ReLU features ({dim}-d)")
    y = rng.integers(0, 10, n_train + 10000)
    x = rng.normal(size=(len(y), dim)) + 0.3 * rng.normal(size=(10, dim))[y]
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], f"Gaussian mixture ({dim}-d, no Fashion-MNIST found)"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=522)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--probes", default="logreg,linear_svm", help="comma-separated; empty: k-means only")
    ap.add_argument("--kmeans-fit", type=int, default=20000)
    ap.add_argument("--kmeans-seeds", type=int, default=3)
    args = ap.parse_args()
    import torch

    from viewsplit.eval.metrics import kmeans_protocol
    from viewsplit.eval.probes import run_probe

    torch.set_num_threads(args.threads)
    xtr, ytr, xte, yte, what = features(args.train, args.dim)
    print(f"{what}; {len(ytr)} train / {len(yte)} test samples; {args.threads} thread(s)\n")
    probes = [p for p in args.probes.split(",") if p]
    if probes:
        print("| probe | sklearn acc | torch acc | difference | sklearn s | torch s | speed-up |")
        print("|---|---|---|---|---|---|---|")
    for p in probes:
        ref, t_ref = timed(lambda p=p: run_probe(p, xtr, ytr, xte, yte, solver="sklearn"))
        ours, t_ours = timed(lambda p=p: run_probe(p, xtr, ytr, xte, yte, solver="torch"))
        print(f"| {p} | {ref['acc']:.4f} | {ours['acc']:.4f} | {ours['acc'] - ref['acc']:+.4f} | {t_ref:.1f} | "
              f"{t_ours:.1f} | {t_ref / t_ours:.1f}× |", flush=True)
    print(f"\n| k-means (n_init 10, seeds 0–{args.kmeans_seeds - 1}) | sklearn ACC | torch ACC | sklearn NMI "
          "| torch NMI | sklearn s | torch s | speed-up |\n|---|---|---|---|---|---|---|---|")
    for label, x, y, fit in ((f"test split ({len(yte)}), full fit", xte, yte, 0),
                             (f"train split ({len(ytr)}), fit on {args.kmeans_fit}", xtr, ytr, args.kmeans_fit)):
        ref, t_ref = timed(lambda x=x, y=y, fit=fit: kmeans_protocol(x, y, 10, args.kmeans_seeds, fit_samples=fit,
                                                                     solver="sklearn"))
        ours, t_ours = timed(lambda x=x, y=y, fit=fit: kmeans_protocol(x, y, 10, args.kmeans_seeds, fit_samples=fit))
        print(f"| {label} | {ref['acc']['mean']:.4f} | {ours['acc']['mean']:.4f} | {ref['nmi']['mean']:.4f} | "
              f"{ours['nmi']['mean']:.4f} | {t_ref:.1f} | {t_ours:.1f} | {t_ref / t_ours:.1f}× |", flush=True)

if __name__ == "__main__":
    main()

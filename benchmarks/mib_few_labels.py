"""MIB vs Multi-View InfoMax with few labels on two-augmentation Fashion-MNIST (MIB's protocol).

Both methods train the same networks on the same augmentation pairs (``configs/edge_fmnist/
mib-augpairs.yaml``: two independent augmentations of each Fashion-MNIST training image, shared
encoder); MV-InfoMax is MIB with β ≡ 0.  The representation is the posterior mean μ of the
un-augmented images (``Z_0``).  Label-limited evaluation (docs/evaluation.md#probes):

* a ``MinMaxScaler`` fitted on the embeddings of **all train-split images** (no labels used);
* ``LogisticRegression(solver="saga", C=10, tol=0.1)`` trained on a balanced subset of k labelled
  train images per class, k ∈ ``--labels`` (default 1, 10, 100), ``--reps`` seeded repetitions
  (subset r is drawn with ``np.random.default_rng(seed + r)``; defect M2 avoided);
* accuracy on the test split; mean ± population std over the repetitions.

A "pixels" row applies the same probe to the raw (MinMax-scaled) pixels.  Markdown goes to stdout;
``results.json`` (per-repetition accuracies, seeds, scaler fit set, configs) to ``--out``.

    python benchmarks/mib_few_labels.py                           # full: 60k images, 100 epochs
    python benchmarks/mib_few_labels.py --train-limit 5000 --epochs 2 --start-iteration 50 --n-iterations 100
    python benchmarks/mib_few_labels.py --models MIB --start-iteration 20000    # a β-schedule variant only

The β schedule (``--beta-start/--beta-end/--start-iteration/--n-iterations``) is given in global
optimiser steps; rescale it for short runs (the reference ramps over steps 50k–150k of ~938k).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def label_limited_accuracy(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                           per_class: int, reps: int, seed: int) -> list[float]:
    """MIB's probe: MinMaxScaler on all train features, saga LogisticRegression on k per class, test accuracy."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import MinMaxScaler

    scaler = MinMaxScaler().fit(x_train)
    xs_train, xs_test = scaler.transform(x_train), scaler.transform(x_test)
    classes = np.unique(y_train)
    accs = []
    for r in range(reps):
        rng = np.random.default_rng(seed + r)
        idx = np.concatenate([rng.choice(np.flatnonzero(y_train == c), per_class, replace=False) for c in classes])
        clf = LogisticRegression(solver="saga", C=10, tol=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(xs_train[idx], y_train[idx])
        accs.append(float((clf.predict(xs_test) == y_test).mean()))
    return accs


def train_and_embed(name: str, args: argparse.Namespace, out: Path) -> tuple[dict, float, dict, object]:
    from viewsplit.config import load_config
    from viewsplit.engine.run import train
    from viewsplit.eval.evaluate import extract

    beta = (0.0, 0.0) if name == "MV-InfoMax" else (args.beta_start, args.beta_end)
    overrides = [f"stages.train.epochs={args.epochs}", f"stages.train.batch_size={args.batch_size}",
                 f"stages.train.lr={args.lr}", f"model.beta_start={beta[0]}", f"model.beta_end={beta[1]}",
                 f"model.start_iteration={args.start_iteration}", f"model.n_iterations={args.n_iterations}",
                 f"train.seed={args.seed}", f"train.threads={args.threads}", "train.progress=never",
                 "train.tensorboard=false", f"data.source={args.source}"]
    if args.train_limit:
        overrides.append(f"data.train_limit={args.train_limit}")
    if args.test_limit:
        overrides.append(f"data.test_limit={args.test_limit}")
    cfg = load_config(args.config, overrides)
    t0 = time.perf_counter()
    run = train(cfg, out / name.lower().replace("-", ""))
    seconds = time.perf_counter() - t0
    feats = {split: (extract(run.method, ds, device=run.device)["Z_0"], ds.labels.numpy())
             for split, ds in (("train", run.splits.train), ("test", run.splits.test))}
    return feats, seconds, cfg.to_dict(), run.splits


def pixels(splits) -> tuple[np.ndarray, np.ndarray]:
    """The un-augmented images, flattened (float32 to keep 60k × 1024 in memory)."""
    return tuple(ds.stack_views_float()[0].flatten(1).numpy() for ds in (splits.train, splits.test))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(REPO / "configs" / "edge_fmnist" / "mib-augpairs.yaml"))
    p.add_argument("--source", default="edge_fmnist", help="image data set to augment (view 0)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--train-limit", type=int, default=None, help="stratified subset of the train split")
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta-start", type=float, default=1e-3)
    p.add_argument("--beta-end", type=float, default=1.0)
    p.add_argument("--start-iteration", type=int, default=10_000, help="β is held until this global step")
    p.add_argument("--n-iterations", type=int, default=30_000, help="length of the log-linear β ramp in steps")
    p.add_argument("--labels", type=int, nargs="+", default=[1, 10, 100], help="labelled examples per class")
    p.add_argument("--reps", type=int, default=20, help="seeded subset repetitions per label count")
    p.add_argument("--models", default="MIB,MV-InfoMax",
                   help="comma-separated subset of MIB,MV-InfoMax (MV-InfoMax ignores the β options)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="folder for the runs and results.json")
    args = p.parse_args(argv)
    models = args.models.split(",")
    if set(models) - {"MIB", "MV-InfoMax"}:
        p.error(f"--models: expected a comma-separated subset of MIB,MV-InfoMax, got {args.models!r}")
    out = Path(args.out or REPO / "runs" / f"mib_few_labels-{time.strftime('%Y%m%d-%H%M%S')}")

    rows, record = {}, {"args": vars(args), "protocol": {
        "representation": "Z_0 = posterior mean of the un-augmented image (eval mode)",
        "scaler": "MinMaxScaler fitted on all train-split embeddings (no labels)",
        "probe": "LogisticRegression(solver='saga', C=10, tol=0.1)",
        "subsets": "balanced, k per class from the train split; repetition r uses np.random.default_rng(seed + r)",
        "score": "accuracy on the test split; mean ± population std over repetitions"}, "results": {}}
    for name in models:
        feats, seconds, cfg, splits = train_and_embed(name, args, out)
        (x_tr, y_tr), (x_te, y_te) = feats["train"], feats["test"]
        rows[name] = {k: label_limited_accuracy(x_tr, y_tr, x_te, y_te, k, args.reps, args.seed) for k in args.labels}
        record["results"][name] = {"train_seconds": round(seconds, 1), "config": cfg,
                                   "accuracy": {str(k): v for k, v in rows[name].items()}}
    px_tr, px_te = pixels(splits)
    rows["pixels"] = {k: label_limited_accuracy(px_tr, y_tr, px_te, y_te, k, args.reps, args.seed) for k in args.labels}
    record["results"]["pixels"] = {"accuracy": {str(k): v for k, v in rows["pixels"].items()}}
    record["samples"] = {"train": len(y_tr), "test": len(y_te)}

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(record, indent=2))
    head = " | ".join(f"{k} label{'s' if k > 1 else ''}/class" for k in args.labels)
    lines = [f"MIB vs MV-InfoMax, two-augmentation {args.source} view 0, {record['samples']['train']} train / "
             f"{record['samples']['test']} test images, {args.epochs} epochs; test accuracy, mean ± std over "
             f"{args.reps} seeded subsets", "", f"| representation | {head} | train s |",
             "|---" * (len(args.labels) + 2) + "|"]
    for name, accs in rows.items():
        cells = " | ".join(f"{np.mean(accs[k]):.4f} ± {np.std(accs[k]):.4f}" for k in args.labels)
        secs = record["results"][name].get("train_seconds", "—")
        lines.append(f"| {name} | {cells} | {secs} |")
    print("\n".join(lines))
    print(f"\nresults: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

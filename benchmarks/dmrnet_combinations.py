"""DMRNet vs concatenation fusion: test accuracy for every non-empty view combination.

Both methods train from their shipped configs (``configs/<data>/dmrnet.yaml`` and ``fusion.yaml``:
the same encoders, embedding layer, classifier, modality drop and schedule; fusion has no
probabilistic embedding, KL or hard-combination term) once per training seed 0 … seeds−1, on a
fixed data split.  The final epoch is the model; the test split is only scored.  Each model then
classifies the test split with the mask set to one combination S for every sample (eval mode: μ,
no modality drop; docs/evaluation.md#missing-views), for all 2^V − 1 combinations (Handwritten: 63).

Markdown to stdout: one row per combination, sorted by fusion accuracy (hardest first), with
mean ± std over seeds and the difference DMRNet − fusion; then the mean over combinations, the
worst 10 % (per seed, the mean of each method's own ⌈10 % · (2^V − 1)⌉ lowest combinations) and
the full set; and the hard combinations DMRNet chose per seed.  ``--out DIR`` keeps the run
folders (a finished run is reused, an interrupted one resumed) and writes ``results.json``.

Overrides ``key=value`` apply to both methods; ``dmrnet:key=value`` or ``fusion:key=value`` to one.

    python benchmarks/dmrnet_combinations.py --data handwritten --seeds 3
    python benchmarks/dmrnet_combinations.py --data edge_fmnist --seeds 1 --threads 2
    python benchmarks/dmrnet_combinations.py --data handwritten stages.train.epochs=3     # smoke run
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

METHODS = ("fusion", "dmrnet")


@torch.no_grad()
def combination_accuracies(method, ds, device: torch.device, batch_size: int = 1024) -> np.ndarray:
    """Test accuracy for every combination code 1 … 2^V − 1 (index code − 1), every sample masked alike."""
    from viewsplit.losses import combination_masks

    method.eval()
    combos = combination_masks(ds.n_views, device)
    correct = torch.zeros(len(combos), dtype=torch.long)
    for batch in ds.batches(batch_size):
        batch = batch.to(device)
        for c, combo in enumerate(combos):
            pred = method.predict_logits(batch.views, combo.expand(len(batch), -1)).argmax(1)
            correct[c] += int((pred == batch.labels).sum())
    return correct.numpy() / len(ds)


def train_or_load(name: str, data: str, seed: int, overrides: list[str], folder: Path):
    """The trained model of one (method, seed) and its training seconds (loaded when ``folder``
    holds a finished run, resumed when it holds an unfinished one)."""
    from viewsplit.config import CONFIG_DIR, load_config
    from viewsplit.engine import checkpoint as ckpt
    from viewsplit.engine.run import load_run, train

    last = folder / "checkpoints" / "last.pt"
    if (folder / "checkpoints" / "final.pt").exists():
        run = load_run(folder)
    else:
        cfg = load_config(CONFIG_DIR / data / f"{name}.yaml",
                          [f"train.seed={seed}", "train.progress=never", "train.tensorboard=false", *overrides])
        run = train(cfg, folder, resume=last.exists())
    return run, float(ckpt.load(last)["train_seconds"])


def split_overrides(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {m: [] for m in METHODS}
    for item in items:
        head, _, rest = item.partition(":")
        if head in METHODS and "=" in rest:
            out[head].append(rest)
        else:
            for m in METHODS:
                out[m].append(item)
    return out


def _pm(a: np.ndarray) -> str:
    return f"{a.mean():.4f} ± {a.std():.4f}"


def markdown(acc: dict[str, np.ndarray], names: list[str], hard: list[list[list[int]]], seconds: dict) -> str:
    """``acc[method]`` is (seeds, 2^V − 1); rows sorted by fusion's mean accuracy, ascending."""
    n_views, n_combos = len(names), acc["fusion"].shape[1]
    seeds = acc["fusion"].shape[0]
    k = math.ceil(0.1 * n_combos)
    label = [" + ".join(names[v] for v in range(n_views) if (c + 1) >> v & 1) for c in range(n_combos)]
    lines = [f"Test accuracy per view combination, mean ± std over {seeds} training seed(s); rows sorted by "
             "fusion accuracy (hardest first).", "",
             "| combination | views | fusion | DMRNet | DMRNet − fusion |", "|---|---|---|---|---|"]
    for c in np.argsort(acc["fusion"].mean(0), kind="stable"):
        f, d = acc["fusion"][:, c], acc["dmrnet"][:, c]
        lines.append(f"| {label[c]} | {bin(c + 1).count('1')} | {_pm(f)} | {_pm(d)} | {(d - f).mean():+.4f} |")
    summary = {f"mean over {n_combos} combinations": lambda a: a.mean(1),
               f"worst 10 % ({k} lowest per method)": lambda a: np.sort(a, 1)[:, :k].mean(1),
               "full set": lambda a: a[:, -1]}
    for title, fn in summary.items():
        f, d = fn(acc["fusion"]), fn(acc["dmrnet"])
        lines.append(f"| **{title}** | | {_pm(f)} | {_pm(d)} | {(d - f).mean():+.4f} |")
    lines += ["", "DMRNet's hard combinations (chosen from σ² after the warm-up), per seed: " +
              "; ".join(f"seed {s}: " + (", ".join("{" + ", ".join(names[v] for v in h) + "}" for h in hs) or "none")
                        for s, hs in enumerate(hard)),
              "", "Training seconds per seed: " + ", ".join(f"{m} {np.mean(t):.0f}" for m, t in seconds.items())]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="key=value (both methods) or dmrnet:key=value / fusion:key=value")
    p.add_argument("--data", default="handwritten", choices=["handwritten", "edge_fmnist"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="keep run folders and write results.json here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = split_overrides([*args.overrides, f"train.threads={args.threads}"])
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        acc: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
        seconds: dict[str, list[float]] = {m: [] for m in METHODS}
        hard: list[list[list[int]]] = []
        for seed in range(args.seeds):
            for name in METHODS:
                run, secs = train_or_load(name, args.data, seed, overrides[name],
                                          root / args.data / name / f"seed{seed}")
                acc[name].append(combination_accuracies(run.method, run.splits.test, run.device))
                seconds[name].append(secs)
                if name == "dmrnet":
                    hard.append(run.method.hard_combinations())
                names = list(run.splits.test.view_names)
        table = {m: np.stack(a) for m, a in acc.items()}
        print(markdown(table, names, hard, seconds))
        if args.out:
            record = {"data": args.data, "seeds": args.seeds, "overrides": overrides, "view_names": names,
                      "combination_codes": list(range(1, 2 ** len(names))),
                      "accuracy": {m: a.tolist() for m, a in table.items()}, "hard_combinations": hard,
                      "train_seconds": seconds, "model_selection": "final epoch; test split only scored"}
            (args.out / "results.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()

"""``viewsplit plot``: 2-D maps of a trained run's codes and its loss curves, as PNGs."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def cmd_plot(args: argparse.Namespace) -> int:
    from ..eval.plots import require_matplotlib

    require_matplotlib()  # before loading the run and its data
    from ..engine.run import load_run, save_plots

    t0 = time.perf_counter()
    run = load_run(args.run_dir, device=args.device)
    reps = [r.strip() for r in args.representations.split(",") if r.strip()] if args.representations else []
    options = {"embedding": args.embedding, "x": args.x, "seed": args.seed, "representations": reps}
    if args.max_points is not None:
        options["max_points"] = args.max_points
    out = args.out or run.run_dir / "plots"
    paths = save_plots(run, out, **options)
    for p in paths:
        print(p)
    print(f"plots: {len(paths)} PNGs and embedding.npz in {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def add_parsers(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The ``plot`` sub-command."""
    p = sub.add_parser("plot", help="2-D maps of a run's codes (test split) and its loss curves, as PNGs "
                                    "(needs matplotlib)", formatter_class=fmt)
    p.add_argument("run_dir", type=Path, help="the run folder")
    p.add_argument("--out", type=Path, help="folder for the PNGs (default: RUN_DIR/plots)")
    p.add_argument("--max-points", type=int, metavar="N",
                   help="map a seeded subsample of at most N test samples (default: the run's eval.plot_points, "
                        "2000 unless set)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample and of the map")
    p.add_argument("--embedding", choices=("auto", "tsne", "umap"), default="auto",
                   help="2-D map: t-SNE, UMAP (needs umap-learn), or auto = UMAP when importable, else t-SNE")
    p.add_argument("--representations", metavar="REP[,REP]",
                   help="the codes to map, e.g. C,V_0 (default: every one the method gives except *_cat)")
    p.add_argument("--x", choices=("epoch", "step"), default="epoch",
                   help="loss curves against the epoch (epoch means) or the global step (logged steps)")
    p.add_argument("--device", help="encode on this device (default: the run's train.device)")
    p.set_defaults(fn=cmd_plot)

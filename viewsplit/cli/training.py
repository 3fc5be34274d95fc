"""``viewsplit train``, ``run``, ``eval`` and ``demo``: train a method into a run folder, evaluate it."""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from .common import config_path, print_summary

DEMO_CONFIG = "handwritten/mrdd"
#: ``viewsplit eval --mine --full``: MINE runs per view (the MRDD supplement's count; the default is eval.mine_runs)
FULL_MINE_RUNS = 10


def cmd_train(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.run import train

    run = train(load_config(config_path(args.config), args.overrides), args.out, args.resume, args.allow_changed)
    if run.is_main:
        print(f"trained: {run.run_dir}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..engine.run import run_all

    run, metrics = run_all(load_config(config_path(args.config), args.overrides), args.out, args.resume,
                           args.allow_changed)
    if metrics is not None:
        print_report(metrics, run.run_dir)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..config import build_config, merge, parse_override
    from ..engine.run import evaluate_missing_run, evaluate_run, load_run
    from ..errors import ConfigError
    from ..files import run_lock, same_file

    run = load_run(args.run_dir, device=args.device, checkpoint=args.checkpoint)
    if args.mine:
        args.overrides = [*args.overrides, "eval.mine=true"]
    if args.full:   # the full protocols; explicit eval.* overrides still win
        every = 2 ** run.splits.train.n_views - 1
        args.overrides = [f"eval.mine_runs={FULL_MINE_RUNS}", f"eval.missing_combinations={every}", *args.overrides]
    if args.overrides:
        raw = run.cfg.to_dict()
        for item in args.overrides:
            if not item.startswith("eval."):
                raise ConfigError(f"{item!r}: viewsplit eval only takes eval.* overrides")
            raw = merge(raw, parse_override(item))
        run.cfg = build_config(raw)
    out = args.out or run.run_dir
    # writing into the run folder: hold its lock, so that no training writes it meanwhile
    own = run.run_dir.is_dir() and (args.out is None or same_file(args.out, run.run_dir))
    with run_lock(run.run_dir) if own else contextlib.nullcontext():
        if args.missing:
            from ..eval.missing import markdown

            print(markdown(evaluate_missing_run(run, out)))
            print(f"missing-view report: {out / 'missing.md'}, {out / 'missing.json'}")
            return 0
        metrics = evaluate_run(run, out)
    print_summary(metrics, out, "report folder")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from ..config import load_config
    from ..engine.run import run_all

    out = args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    run, metrics = run_all(load_config(config_path(DEMO_CONFIG), args.overrides), out)
    if metrics is not None:
        print_report(metrics, run.run_dir)
    return 0


#: the representation a headline leads with, the first of these a method has (else its first one)
HEADLINE_FIRST = ("C", "Z", "Z_cat", "B_cat")


def print_report(metrics: dict, run_dir: Path) -> None:
    """The end of ``run`` and ``demo``: the report's tables, then the headline numbers, the run folder and
    the plots' folder."""
    from ..eval.evaluate import markdown

    print(markdown(metrics))
    print(headline(metrics))
    print(f"run folder: {run_dir}")
    plots = run_dir / "plots"
    print(f"plots: {plots}" if plots.is_dir() else "plots: none (eval.plots=false, or matplotlib is not installed)")


def headline(metrics: dict) -> str:
    """One line: k-means ACC and the logistic probe of the main representation, of ``C+V_all`` and of the raw
    views (``raw_all``), where the report has them."""
    reps = [r for r in (*metrics.get("clustering", {}), *metrics.get("classification", {})) if not r.startswith("raw_")]
    main = next((r for r in HEADLINE_FIRST if r in reps), reps[0] if reps else None)
    shown = [(r, _scores(metrics, r)) for r in dict.fromkeys([main, "C+V_all", "raw_all"]) if r is not None]
    shown = [(r, text) for r, text in shown if text]
    if not shown:
        return "headline: no k-means or probe scores (no labels); the report has the rest"
    return "headline: " + " | ".join(f"{r}: {text}" for r, text in shown)


def _scores(metrics: dict, rep: str) -> str:
    parts = []
    acc = (metrics.get("clustering", {}).get(rep) or {}).get("acc")
    if isinstance(acc, dict) and "mean" in acc:
        parts.append(f"k-means ACC {acc['mean']:.3f} ± {acc.get('std', 0.0):.3f}")
    probes = {p: v for p, v in (metrics.get("classification", {}).get(rep) or {}).items()
              if isinstance(v, dict) and "acc" in v}
    probe = "logreg" if "logreg" in probes else next(iter(probes), None)
    if probe is not None:
        parts.append(f"{'logistic' if probe == 'logreg' else probe} probe {probes[probe]['acc']:.3f}")
    return ", ".join(parts)


def _allow_changed(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def add_parsers(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The ``train``, ``run``, ``eval`` and ``demo`` sub-commands."""
    for name, fn, help_ in (("train", cmd_train, "train every stage of a method"),
                            ("run", cmd_run, "train every stage, evaluate and write the report")):
        s = sub.add_parser(name, help=help_, formatter_class=fmt)
        s.add_argument("config", help="YAML run config (or a shipped one, e.g. handwritten/autoencoder)")
        s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. stages.consistency.epochs=5 "
                                                    "(stage names: viewsplit methods NAME)")
        s.add_argument("--out", type=Path, help="run folder (default: runs/<data>-<method>-<time>)")
        s.add_argument("--resume", action="store_true", help="continue the run saved in --out")
        s.add_argument("--allow-changed", type=_allow_changed, default=[], metavar="KEY[,KEY]",
                       help="with --resume: config keys that may differ from the saved run, e.g. stages.disentangle.lr "
                            "or train.threads (stages.* and train.* only; wildcards like stages.*.lr allowed)")
        s.set_defaults(fn=fn)

    e = sub.add_parser("eval", help="evaluate a trained run and write metrics.json / metrics.md", formatter_class=fmt)
    e.add_argument("run_dir", type=Path, help="the run folder")
    e.add_argument("overrides", nargs="*", help="eval.* overrides, e.g. eval.secondary_splits=[train]")
    e.add_argument("--device", help="evaluate on this device (default: the run's train.device)")
    e.add_argument("--checkpoint", default="final", help="checkpoint name in RUN_DIR/checkpoints")
    e.add_argument("--out", type=Path, help="write the report to this folder instead of RUN_DIR "
                                            "(keeps the run's own metrics.json / metrics.md)")
    what = e.add_mutually_exclusive_group()
    what.add_argument("--mine", action="store_true", help="also estimate I(C; V_v) with MINE (redundancy; "
                                                          "eval.mine_runs=3 runs of eval.mine_epochs=100 per view)")
    what.add_argument("--missing", action="store_true",
                      help="instead of the standard report, evaluate every view combination (and imputation for "
                           "methods that predict views); writes missing.json / missing.md")
    e.add_argument("--full", action="store_true",
                   help=f"the full protocols (docs/evaluation.md): with --mine, {FULL_MINE_RUNS} MINE runs per view "
                        "instead of eval.mine_runs (3); with --missing, all 2^V-1 view combinations instead of at most "
                        "eval.missing_combinations (16)")
    e.set_defaults(fn=cmd_eval)

    m = sub.add_parser("demo", help="run the main method on the embedded Handwritten data", formatter_class=fmt)
    m.add_argument("overrides", nargs="*", help="key=value overrides of the demo config (handwritten/mrdd)")
    m.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")
    m.set_defaults(fn=cmd_demo)

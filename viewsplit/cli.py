"""Command-line interface: ``viewsplit {datasets,train,eval,run,demo}`` (also ``python -m viewsplit``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ViewsplitError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEMO_CONFIG = CONFIG_DIR / "handwritten" / "autoencoder.yaml"


def _config_path(name: str) -> Path:
    """A YAML path, or a shipped config named like ``handwritten/mrdd``."""
    p = Path(name)
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    shipped = CONFIG_DIR / f"{name}.yaml"
    return shipped if shipped.exists() else p


def cmd_datasets(args) -> int:
    from .data import DATASETS, DataConfig

    rows = []
    for name, info in sorted(DATASETS.items()):
        cfg = DataConfig(name=name, root=args.root)
        found, where = info.locate(cfg)
        rows.append((name, info.shape, "yes" if found else "no", where, info.summary))
    print("| name | views, shapes, samples, classes | found | where | description |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


def _print_summary(metrics: dict, run_dir: Path) -> None:
    from .eval.evaluate import markdown

    print(markdown(metrics))
    print(f"run folder: {run_dir}")


def cmd_train(args) -> int:
    from .config import load_config
    from .engine.run import train

    run = train(load_config(_config_path(args.config), args.overrides), args.out, args.resume)
    print(f"trained: {run.run_dir}")
    return 0


def cmd_run(args) -> int:
    from .config import load_config
    from .engine.run import run_all

    run, metrics = run_all(load_config(_config_path(args.config), args.overrides), args.out, args.resume)
    if metrics is not None:
        _print_summary(metrics, run.run_dir)
    return 0


def cmd_eval(args) -> int:
    from .config import build_config, merge, parse_override
    from .engine.run import evaluate_run, load_run
    from .errors import ConfigError

    run = load_run(args.run_dir, device=args.device, checkpoint=args.checkpoint)
    if args.overrides:
        raw = run.cfg.to_dict()
        for item in args.overrides:
            if not item.startswith("eval."):
                raise ConfigError(f"{item!r}: viewsplit eval only takes eval.* overrides")
            raw = merge(raw, parse_override(item))
        run.cfg = build_config(raw)
    _print_summary(evaluate_run(run), run.run_dir)
    return 0


def cmd_demo(args) -> int:
    import time

    from .config import load_config
    from .engine.run import run_all

    out = args.out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    run, metrics = run_all(load_config(DEMO_CONFIG, args.overrides), out)
    if metrics is not None:
        _print_summary(metrics, run.run_dir)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="viewsplit", description="Disentangled multi-view representation learning.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("datasets", help="list the built-in data sets and whether their files were found")
    d.add_argument("--root", help="also look for data files in this folder")
    d.set_defaults(fn=cmd_datasets)

    for name, fn, help_ in (("train", cmd_train, "train every stage of a method"),
                            ("run", cmd_run, "train every stage, evaluate and write the report")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("config", help="YAML run config (or a shipped one, e.g. handwritten/autoencoder)")
        s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. stages.train.epochs=5")
        s.add_argument("--out", type=Path, help="run folder (default: runs/<data>-<method>-<time>)")
        s.add_argument("--resume", action="store_true", help="continue the run saved in --out")
        s.set_defaults(fn=fn)

    e = sub.add_parser("eval", help="evaluate a trained run and write metrics.json / metrics.md")
    e.add_argument("run_dir", type=Path)
    e.add_argument("overrides", nargs="*", help="eval.* overrides, e.g. eval.secondary_splits=[train]")
    e.add_argument("--device", help="evaluate on this device instead of the run's")
    e.add_argument("--checkpoint", default="final", help="checkpoint name in RUN_DIR/checkpoints (default: final)")
    e.set_defaults(fn=cmd_eval)

    m = sub.add_parser("demo", help="run the main method on the embedded Handwritten data")
    m.add_argument("overrides", nargs="*")
    m.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")
    m.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except ViewsplitError as err:
        print(f"viewsplit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("viewsplit: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

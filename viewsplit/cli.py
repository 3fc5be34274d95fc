"""Command-line interface: ``viewsplit {datasets,train,eval,run,convert,demo}`` (also ``python -m viewsplit``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import CONFIG_DIR
from .errors import ViewsplitError

DEMO_CONFIG = CONFIG_DIR / "handwritten" / "mrdd.yaml"


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


def _print_summary(metrics: dict, folder: Path, label: str = "run folder") -> None:
    from .eval.evaluate import markdown

    print(markdown(metrics))
    print(f"{label}: {folder}")


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
    from .engine.run import evaluate_missing_run, evaluate_run, load_run
    from .errors import ConfigError

    run = load_run(args.run_dir, device=args.device, checkpoint=args.checkpoint)
    if args.mine:
        args.overrides = [*args.overrides, "eval.mine=true"]
    if args.overrides:
        raw = run.cfg.to_dict()
        for item in args.overrides:
            if not item.startswith("eval."):
                raise ConfigError(f"{item!r}: viewsplit eval only takes eval.* overrides")
            raw = merge(raw, parse_override(item))
        run.cfg = build_config(raw)
    out = args.out or run.run_dir
    if args.missing:
        from .eval.missing import markdown

        print(markdown(evaluate_missing_run(run, out)))
        print(f"missing-view report: {out / 'missing.md'}, {out / 'missing.json'}")
        return 0
    _print_summary(evaluate_run(run, out), out, "report folder")
    return 0


def cmd_predict(args) -> int:
    import numpy as np

    from .engine.run import load_run
    from .errors import ConfigError
    from .eval.prediction import predict_views, prediction_error

    run = load_run(args.run_dir, device=args.device)
    if not hasattr(run.method, "predict"):
        raise ConfigError(f"method {run.cfg.method!r} cannot predict missing views")
    ds = run.splits.test if args.split == "test" else run.splits.train
    names = list(ds.view_names)
    given = []
    for tok in args.views.split(","):
        tok = tok.strip()
        if tok.isdigit() and int(tok) < len(names):
            given.append(int(tok))
        elif tok in names:
            given.append(names.index(tok))
        else:
            raise ConfigError(f"--views: {tok!r} is neither a view index (0…{len(names) - 1}) nor a view name {names}")
    missing = [v for v in range(len(names)) if v not in given]
    if not missing:
        raise ConfigError("--views: every view is given; leave at least one out to predict it")
    preds = predict_views(run.method, ds, given, run.cfg.eval.batch_size, run.device)
    out = args.out or run.run_dir / f"predictions-{args.split}-from-{'-'.join(map(str, given))}.npz"
    np.savez_compressed(out, index=np.arange(len(ds)), **{f"pred_view{v}": preds[v].numpy() for v in missing})
    train_views, truth = run.splits.train.stack_views_float(), ds.stack_views_float()
    print("| predicted view | MSE | mean-view baseline |")
    print("|---|---|---|")
    for v in missing:
        err = prediction_error(preds[v], truth[v], train_views[v])
        print(f"| {v} ({names[v]}) | {err['mse']:.5f} | {err['mean_baseline_mse']:.5f} |")
    print(f"predictions: {out}")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench, markdown

    table = bench(args.methods.split(","), args.datasets.split(","), args.seeds, args.out, args.overrides)
    print(markdown(table, args.seeds))
    print(f"tables: {args.out / 'bench.md'}, {args.out / 'bench.json'}")
    return 0


def cmd_convert(args) -> int:
    from .config import merge, parse_override
    from .data.convert import csv_sources, dataset_sources, npz_sources, write_folder
    from .data.ondisk import open_folder
    from .errors import ConfigError

    if args.overrides and not args.dataset:
        raise ConfigError("data.* overrides apply to --dataset only")
    if args.npz:
        sources = npz_sources(args.npz, args.chunk)
    elif args.csv:
        sources = csv_sources(args.csv, args.labels, args.chunk)
    else:
        raw: dict = {}
        for item in args.overrides:
            if not item.startswith("data."):
                raise ConfigError(f"{item!r}: viewsplit convert --dataset only takes data.* overrides")
            raw = merge(raw, parse_override(item))
        sources = dataset_sources(args.dataset, raw.get("data", {}), args.chunk)
    folder = open_folder(write_folder(args.out, sources))
    print("| array | shape | dtype |\n|---|---|---|")
    for name, (shape, dtype, _) in sources.items():
        print(f"| {name}.npy | {shape} | {dtype} |")
    print(f"folder: {folder.path} ({folder.n} samples, {len(folder.views)} views); "
          f"train on it with data.name=folder data.path={folder.path}")
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
    e.add_argument("--out", type=Path, help="write the report to this folder instead of RUN_DIR "
                                            "(keeps the run's own metrics.json / metrics.md)")
    what = e.add_mutually_exclusive_group()
    what.add_argument("--mine", action="store_true", help="also estimate I(C; V_v) with MINE (redundancy)")
    what.add_argument("--missing", action="store_true",
                      help="instead of the standard report, evaluate every view combination (and imputation for "
                           "methods that predict views); writes missing.json / missing.md")
    e.set_defaults(fn=cmd_eval)

    pr = sub.add_parser("predict", help="predict missing views from the given ones (generative methods)")
    pr.add_argument("run_dir", type=Path)
    pr.add_argument("--views", required=True, help="the available views, by index or name, e.g. 0 or image")
    pr.add_argument("--split", choices=("test", "train"), default="test")
    pr.add_argument("--out", type=Path, help="output .npz (default: RUN_DIR/predictions-<split>-from-<views>.npz)")
    pr.add_argument("--device")
    pr.set_defaults(fn=cmd_predict)

    b = sub.add_parser("bench", help="train and evaluate methods × data sets over seeds; write a results table")
    b.add_argument("--methods", default="mrdd,mib,decur,softcca,fae,dcca,autoencoder")
    b.add_argument("--datasets", default="handwritten")
    b.add_argument("--seeds", type=int, default=3)
    b.add_argument("--out", type=Path, default=Path("runs") / "bench")
    b.add_argument("overrides", nargs="*", help="key=value overrides applied to every run")
    b.set_defaults(fn=cmd_bench)

    c = sub.add_parser("convert", help="write the on-disk multi-view folder format (.npy per view) in chunks")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--npz", type=Path, help="an npz with view0, view1, … (+ labels, mask, train/test_index, "
                                              "factors_*)")
    src.add_argument("--csv", nargs="+", help="one CSV per view, rows aligned")
    src.add_argument("--dataset", help="a built-in data set (data.* overrides after it, e.g. data.root=DIR)")
    c.add_argument("--labels", help="with --csv: a CSV of integer labels")
    c.add_argument("--out", type=Path, required=True, help="the folder to write (new or empty)")
    c.add_argument("--chunk", type=int, default=65536, help="rows read and written at a time (default 65536)")
    c.add_argument("overrides", nargs="*", help="data.* overrides for --dataset")
    c.set_defaults(fn=cmd_convert)

    m = sub.add_parser("demo", help="run the main method on the embedded Handwritten data")
    m.add_argument("overrides", nargs="*")
    m.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")
    m.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (argparse stops collecting them at the first flag)
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
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

"""Command-line interface: ``viewsplit {datasets,methods,train,run,eval,encode,predict,convert,bench,demo}``
(also ``python -m viewsplit``)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .errors import ViewsplitError

# every command imports what it needs (torch, the methods) when it runs, so `viewsplit --help` stays fast
DEMO_CONFIG = "handwritten/mrdd"


def _config_path(name: str) -> Path:
    """A YAML path, or a shipped config named like ``handwritten/mrdd``."""
    from .config import CONFIG_DIR

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


def cmd_methods(args) -> int:
    import dataclasses

    from .config import StageConfig, _plain
    from .methods import available_methods, get_method

    names = args.names or available_methods()
    defaults = _plain(StageConfig())
    print("Stage keys (stages.<stage>.<key>) and their defaults: "
          + ", ".join(f"{k}={v}" for k, v in defaults.items()) + "\n")
    for name in names:
        cls = get_method(name)
        doc = (sys.modules[cls.__module__].__doc__ or cls.__doc__ or "").strip().splitlines()
        print(f"{name}: {doc[0] if doc else ''}")
        for stage, over in cls.stage_defaults.items():
            print(f"  stage {stage}: " + (", ".join(f"{k}={v}" for k, v in over.items()) or "the defaults above"))
        model = _flat(_plain(cls.Config())) if dataclasses.is_dataclass(cls.Config) else {}
        print("  model keys: " + (", ".join(f"{k}={v}" for k, v in model.items()) or "none") + "\n")
    return 0


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested keys as dotted paths: ``{"backbone": {"hidden": [64]}}`` → ``{"backbone.hidden": [64]}``."""
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def _print_summary(metrics: dict, folder: Path, label: str = "run folder") -> None:
    from .eval.evaluate import markdown

    print(markdown(metrics))
    print(f"{label}: {folder}")


def cmd_train(args) -> int:
    from .config import load_config
    from .engine.run import train

    run = train(load_config(_config_path(args.config), args.overrides), args.out, args.resume, args.allow_changed)
    if run.is_main:
        print(f"trained: {run.run_dir}")
    return 0


def cmd_run(args) -> int:
    from .config import load_config
    from .engine.run import run_all

    run, metrics = run_all(load_config(_config_path(args.config), args.overrides), args.out, args.resume,
                           args.allow_changed)
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


def _view_indices(spec: str, names: list[str]) -> list[int]:
    """``--views 0,image`` → view indices."""
    from .errors import ConfigError

    given = []
    for tok in spec.split(","):
        tok = tok.strip()
        if tok.isdigit() and int(tok) < len(names):
            given.append(int(tok))
        elif tok in names:
            given.append(names.index(tok))
        else:
            raise ConfigError(f"--views: {tok!r} is neither a view index (0…{len(names) - 1}) nor a view name {names}")
    return given


def _new_data(paths: list[Path], mask_path: Path | None = None, folder: bool = False) -> tuple[object, object]:
    """``--data`` (one .npz or a CSV per view; with ``folder``, also an on-disk folder, memory-mapped and read
    in batches, its mask.npy in the data set) and the optional ``--mask`` file (.npy or CSV of 0/1)."""
    import numpy as np

    from .data.user import _read_csv, read_views

    if folder and len(paths) == 1 and paths[0].suffix != ".npz" and not paths[0].is_file():
        from .data.ondisk import folder_dataset, open_folder
        from .errors import DataError

        if not paths[0].is_dir():
            raise DataError(f"{paths[0]}: no such folder or file (--data)")
        views, mask = folder_dataset(open_folder(paths[0]), stream=True), None
    else:
        views, mask = read_views(paths)
    if mask_path is not None:
        mask = np.load(mask_path, allow_pickle=False) if mask_path.suffix == ".npy" else _read_csv(mask_path)
    return views, mask


def cmd_encode(args) -> int:
    import numpy as np

    from .errors import ConfigError
    from .estimators import load

    out = args.out
    if out.suffix != ".npz" and (out.suffix == ".npy" or out.is_file()):
        raise ConfigError(f"--out {out}: give an .npz file, or a folder for one .npy per representation")
    est = load(args.model, device=args.device)
    if args.batch_size:
        est.config_.eval.batch_size = args.batch_size
    data, mask = _new_data(args.data, args.mask, folder=True)
    wanted = [r.strip() for r in args.representation.split(",")] if args.representation else []

    def pick(reps: dict) -> dict:
        unknown = [r for r in wanted if r not in reps]
        if unknown:
            raise ConfigError(f"--representation: {unknown} not available; this model gives {list(reps)}")
        return {r: reps[r] for r in wanted} if wanted else reps

    if out.suffix == ".npz":
        reps = pick(est.encode(data, mask))
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, **reps)
        shapes = {k: v.shape for k, v in reps.items()}
    else:   # streamed: each batch's rows appended to OUT/<representation>.npy (float32), memory one batch
        from .data.convert import write_npy_rows

        n = len(data[0]) if isinstance(data, list) else len(data)
        shapes = write_npy_rows(out, n, (pick(r) for r in est.encode_batches(data, mask)))
    n = next(iter(shapes.values()))[0]
    print(f"features of {n} samples ({', '.join(f'{k} {s[1]}' for k, s in shapes.items())}): {out}")
    return 0


def cmd_predict(args) -> int:
    import numpy as np

    from .errors import ConfigError

    if args.data:
        from .estimators import load

        est = load(args.run_dir, device=args.device)
        if not hasattr(est, "predict_views"):
            raise ConfigError(f"method {est.config_.method!r} cannot predict missing views")
        views, _ = _new_data(args.data)
        given = _view_indices(args.views, [str(v) for v in range(est.n_views_)])
        mask = np.zeros((len(views[0]), est.n_views_), dtype=bool)
        mask[:, given] = True
        missing = [v for v in range(est.n_views_) if v not in given]
        if not missing:
            raise ConfigError("--views: every view is given; leave at least one out to predict it")
        preds = est.predict_views(views, mask)
        out = args.out or Path(f"predictions-from-{'-'.join(map(str, given))}.npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, **{f"pred_view{v}": preds[v] for v in missing})
        print(f"predictions: {out}")
        return 0

    from .engine.run import load_run
    from .eval.prediction import predict_views, prediction_error

    run = load_run(args.run_dir, device=args.device)
    if not hasattr(run.method, "predict"):
        raise ConfigError(f"method {run.cfg.method!r} cannot predict missing views")
    ds = run.splits.test if args.split == "test" else run.splits.train
    names = list(ds.view_names)
    given = _view_indices(args.views, names)
    missing = [v for v in range(len(names)) if v not in given]
    if not missing:
        raise ConfigError("--views: every view is given; leave at least one out to predict it")
    preds = predict_views(run.method, ds, given, run.cfg.eval.batch_size, run.device)
    name = f"predictions-{args.split}-from-{'-'.join(map(str, given))}.npz"
    out = (args.out / name if args.out.is_dir() else args.out) if args.out else run.run_dir / name
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, index=np.arange(len(ds)),
                        **{f"pred_view{v}": run.method.preprocess.invert(v, preds[v]).numpy() for v in missing})
    train_views, truth = run.splits.train.stack_views_float(), ds.stack_views_float()
    print("| predicted view | MSE (standardised) | mean-view baseline |")
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
    run, metrics = run_all(load_config(_config_path(DEMO_CONFIG), args.overrides), out)
    if metrics is not None:
        _print_summary(metrics, run.run_dir)
    return 0


class _HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help text states it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        positional = not action.option_strings and action.nargs not in ("*", "?")
        if "default" in text or action.default is argparse.SUPPRESS or positional or action.required:
            return text
        value = {None: "none", False: "off", True: "on"}.get(action.default, action.default) \
            if not isinstance(action.default, list) else (", ".join(action.default) or "none")
        return f"{text} (default: {value})"


def _allow_changed(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def build_parser() -> argparse.ArgumentParser:
    fmt = _HelpWithDefaults
    p = argparse.ArgumentParser(prog="viewsplit", description="Disentangled multi-view representation learning.",
                                formatter_class=fmt)
    p.add_argument("--version", action="version", version=f"viewsplit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("datasets", help="list the built-in data sets and whether their files were found",
                       formatter_class=fmt)
    d.add_argument("--root", help="also look for data files in this folder")
    d.set_defaults(fn=cmd_datasets)

    me = sub.add_parser("methods", help="list each method's stages and config keys with their defaults",
                        formatter_class=fmt)
    me.add_argument("names", nargs="*", help="methods to show (default: all of them)")
    me.set_defaults(fn=cmd_methods)

    for name, fn, help_ in (("train", cmd_train, "train every stage of a method"),
                            ("run", cmd_run, "train every stage, evaluate and write the report")):
        s = sub.add_parser(name, help=help_, formatter_class=fmt)
        s.add_argument("config", help="YAML run config (or a shipped one, e.g. handwritten/autoencoder)")
        s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. stages.train.epochs=5")
        s.add_argument("--out", type=Path, help="run folder (default: runs/<data>-<method>-<time>)")
        s.add_argument("--resume", action="store_true", help="continue the run saved in --out")
        s.add_argument("--allow-changed", type=_allow_changed, default=[], metavar="KEY[,KEY]",
                       help="with --resume: config keys that may differ from the saved run, e.g. stages.train.lr "
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
    what.add_argument("--mine", action="store_true", help="also estimate I(C; V_v) with MINE (redundancy)")
    what.add_argument("--missing", action="store_true",
                      help="instead of the standard report, evaluate every view combination (and imputation for "
                           "methods that predict views); writes missing.json / missing.md")
    e.set_defaults(fn=cmd_eval)

    en = sub.add_parser("encode", help="features of new data from a trained run folder or model file",
                        formatter_class=fmt)
    en.add_argument("model", type=Path, help="a run folder (its checkpoints/final.pt) or a model file (est.save)")
    en.add_argument("--data", type=Path, nargs="+", required=True,
                    help="one .npz (view0, view1, …, optional mask), one CSV per view, raw as in training, or a "
                         "folder of the on-disk format (viewsplit convert; memory-mapped, read in batches)")
    en.add_argument("--out", type=Path, required=True,
                    help="an .npz (one float64 array per representation, all held in memory), or a folder: one "
                         "float32 <representation>.npy each (same values), written batch by batch, so memory does "
                         "not grow with the number of samples; files of the same name are replaced")
    en.add_argument("--representation", help="only these representations, comma-separated (default: every one)")
    en.add_argument("--mask", type=Path, help="(N, V) availability of each view (.npy or CSV of 0/1; default: "
                                               "the npz's mask array or the folder's mask.npy, else every view "
                                               "present)")
    en.add_argument("--batch-size", type=int, help="samples per batch (default: the run's eval.batch_size)")
    en.add_argument("--device", help="encode on this device instead of the run's")
    en.set_defaults(fn=cmd_encode)

    pr = sub.add_parser("predict", help="predict missing views from the given ones (generative methods)",
                        formatter_class=fmt)
    pr.add_argument("run_dir", type=Path, help="a run folder (or, with --data, a model file)")
    pr.add_argument("--views", required=True, help="the available views, by index or name, e.g. 0 or image")
    pr.add_argument("--split", choices=("test", "train"), help="which split's samples to predict", default="test")
    pr.add_argument("--data", type=Path, nargs="+",
                    help="new data instead of the run's split: one .npz or one CSV per view (the views not in "
                         "--views may hold anything)")
    pr.add_argument("--out", type=Path, help="output .npz, or a folder for it (created if needed; default: "
                                             "RUN_DIR/predictions-<split>-from-<views>.npz)")
    pr.add_argument("--device", help="predict on this device (default: the run's train.device)")
    pr.set_defaults(fn=cmd_predict)

    b = sub.add_parser("bench", help="train and evaluate methods × data sets over seeds; write a results table",
                       formatter_class=fmt)
    b.add_argument("--methods", default="mrdd,mib,decur,softcca,fae,dcca,autoencoder",
                   help="comma-separated methods (each needs configs/<data set>/<method>.yaml)")
    b.add_argument("--datasets", default="handwritten", help="comma-separated data sets")
    b.add_argument("--seeds", type=int, default=3, help="training seeds per method (train.seed = 0 … seeds-1)")
    b.add_argument("--out", type=Path, default=Path("runs") / "bench", help="benchmark folder")
    b.add_argument("overrides", nargs="*", help="key=value overrides applied to every run; METHOD:key=value "
                                                "applies to one method only, e.g. mib:model.beta=1")
    b.set_defaults(fn=cmd_bench)

    c = sub.add_parser("convert", help="write the on-disk multi-view folder format (.npy per view) in chunks",
                       formatter_class=fmt)
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

    m = sub.add_parser("demo", help="run the main method on the embedded Handwritten data", formatter_class=fmt)
    m.add_argument("overrides", nargs="*", help="key=value overrides of the demo config (handwritten/mrdd)")
    m.add_argument("--out", type=Path, help="run folder (default: runs/demo-<time>)")
    m.set_defaults(fn=cmd_demo)
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr``, even after a caller (a test, a notebook) replaced it."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _log_to_stderr() -> None:
    """Progress lines of the ``viewsplit`` logger go to stderr, as ``viewsplit: <message>``."""
    log = logging.getLogger("viewsplit")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("viewsplit: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (argparse stops collecting them at the first flag)
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    _log_to_stderr()
    try:
        return args.fn(args)
    except ViewsplitError as err:
        print(f"viewsplit: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:   # a file or folder that cannot be read or written; str(err) names it
        print(f"viewsplit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("viewsplit: interrupted; resume with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

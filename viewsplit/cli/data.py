"""``viewsplit encode``, ``predict`` and ``convert``: features and predicted views of data, the on-disk format."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _view_indices(spec: str, names: list[str]) -> list[int]:
    """``--views 0,image`` → view indices."""
    from ..errors import ConfigError, quote

    given: list[int] = []
    for tok in spec.split(","):
        tok = tok.strip()
        if tok.isdigit() and int(tok) < len(names):
            v = int(tok)
        elif tok in names:
            v = names.index(tok)
        else:
            raise ConfigError(f"--views: {quote(tok)} is neither a view index (0…{len(names) - 1}) nor a view name "
                              f"{quote(names)}")
        if v in given:
            raise ConfigError(f"--views: view {v} ({names[v]!r}) is given twice in {quote(spec)}")
        given.append(v)
    return given


def _new_data(paths: list[Path], mask_path: Path | None = None, folder: bool = False) -> tuple[Any, Any]:
    """``--data`` (one .npz or a CSV per view; with ``folder``, also an on-disk folder, memory-mapped and read
    in batches, its mask.npy in the data set) and the optional ``--mask`` file (.npy or CSV of 0/1)."""
    from ..data.user import _read_csv, read_views

    views: Any
    mask: Any
    if folder and len(paths) == 1 and paths[0].suffix != ".npz" and not paths[0].is_file():
        from ..data.ondisk import folder_dataset, open_folder
        from ..errors import DataError

        if not paths[0].is_dir():
            raise DataError(f"{paths[0]}: no such folder or file (--data)")
        views, mask = folder_dataset(open_folder(paths[0]), stream=True), None
    else:
        views, mask = read_views(paths)
    where = f"{paths[0]}: array 'mask'"
    if mask_path is not None:
        from ..data.ondisk import read_npy

        mask = read_npy(mask_path) if mask_path.suffix == ".npy" else _read_csv(mask_path)
        where = f"{mask_path} (--mask)"
    if mask is not None:
        from ..data.user import check_mask

        n, n_views = (len(views[0]), len(views)) if isinstance(views, list) else (len(views), views.n_views)
        mask = check_mask(mask, n, n_views, where)
    return views, mask


def cmd_encode(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import ConfigError
    from ..estimators import load
    from ..files import atomic_path, refuse_inputs
    from .common import check_count

    check_count(args.batch_size, "--batch-size")
    out: Path = args.out.expanduser()
    if out.suffix != ".npz" and (out.suffix == ".npy" or out.is_file()):
        raise ConfigError(f"--out {out}: give an .npz file, or a folder for one .npy per representation")
    refuse_inputs(out, [*args.data, *([args.mask] if args.mask else []), args.model])
    est = load(args.model, device=args.device)
    if args.batch_size is not None:
        est.config_.eval.batch_size = args.batch_size
    data, mask = _new_data(args.data, args.mask, folder=True)
    wanted = [r.strip() for r in (args.representation or "").split(",") if r.strip()]

    def pick(reps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        unknown = [r for r in wanted if r not in reps]
        if unknown:
            raise ConfigError(f"--representation: {unknown} not available; this model gives {list(reps)}")
        return {r: reps[r] for r in wanted} if wanted else reps

    shapes: dict[str, tuple[int, ...]]
    if out.suffix == ".npz":
        reps = pick(est.encode(data, mask))
        arrays: dict[str, Any] = reps   # Any: mypy would match **arrays against savez's allow_pickle flag
        with atomic_path(out) as tmp:
            np.savez(tmp, **arrays)
        shapes = {k: v.shape for k, v in reps.items()}
    else:   # streamed: each batch's rows appended to OUT/<representation>.npy (float32), memory one batch
        from ..data.convert import write_npy_rows

        n = len(data[0]) if isinstance(data, list) else len(data)
        shapes = write_npy_rows(out, n, (pick(r) for r in est.encode_batches(data, mask)))
    n = next(iter(shapes.values()))[0]
    print(f"features of {n} samples ({', '.join(f'{k} {s[1]}' for k, s in shapes.items())}): {out}")
    return 0


def _npz(path: Path) -> Path:
    """``path`` with the ``.npz`` that ``numpy.savez`` would append to it."""
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import ConfigError
    from ..files import atomic_path, refuse_inputs

    if args.data:
        from ..estimators import load

        out = args.out.expanduser() if args.out else None
        if out is not None and out.is_dir():
            out = out / f"predictions-from-{args.views.replace(',', '-')}.npz"
        if out is not None:
            out = _npz(out)
            refuse_inputs(out, [*args.data, args.run_dir])
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
        if out is None:   # the default name depends on the given views; an --out was checked before loading
            out = _npz(Path(f"predictions-from-{'-'.join(map(str, given))}.npz"))
            refuse_inputs(out, [*args.data, args.run_dir])
        with atomic_path(out) as tmp:
            np.savez(tmp, **{f"pred_view{v}": preds[v] for v in missing})
        print(f"predictions: {out}")
        return 0

    from ..engine.run import load_run
    from ..eval.prediction import predict_views, prediction_error
    from ..methods.base import ViewPredictor

    run = load_run(args.run_dir, device=args.device)
    if not isinstance(run.method, ViewPredictor):
        raise ConfigError(f"method {run.cfg.method!r} cannot predict missing views")
    ds = run.splits.test if args.split == "test" else run.splits.train
    names = list(ds.view_names or [])
    given = _view_indices(args.views, names)
    missing = [v for v in range(len(names)) if v not in given]
    if not missing:
        raise ConfigError("--views: every view is given; leave at least one out to predict it")
    preds = predict_views(run.method, ds, given, run.cfg.eval.batch_size, run.device)
    name = f"predictions-{args.split}-from-{'-'.join(map(str, given))}.npz"
    out = _npz((args.out / name if args.out.is_dir() else args.out) if args.out else run.run_dir / name)
    refuse_inputs(out, [args.run_dir])
    predicted: dict[str, Any] = {f"pred_view{v}": run.method.preprocess.invert(v, preds[v]).numpy() for v in missing}
    with atomic_path(out) as tmp:
        np.savez_compressed(tmp, index=np.arange(len(ds)), **predicted)   # Any: as in cmd_encode
    train_views, truth = run.splits.train.stack_views_float(), ds.stack_views_float()
    print("| predicted view | MSE (standardised) | mean-view baseline |")
    print("|---|---|---|")
    for v in missing:
        err = prediction_error(preds[v], truth[v], train_views[v])
        print(f"| {v} ({names[v]}) | {err['mse']:.5f} | {err['mean_baseline_mse']:.5f} |")
    print(f"predictions: {out}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from ..config import merge, parse_override
    from ..data.convert import csv_sources, dataset_sources, npz_sources, write_folder
    from ..data.ondisk import open_folder
    from ..errors import ConfigError
    from .common import check_count

    check_count(args.chunk, "--chunk")
    if args.labels and not args.csv:
        raise ConfigError("--labels: applies to --csv only (an npz holds its labels as the array 'labels')")
    if args.out.is_file():
        raise ConfigError(f"--out {args.out}: is a file; give a new or empty folder")
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


def add_parsers(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The ``encode``, ``predict`` and ``convert`` sub-commands."""
    en = sub.add_parser("encode", help="features of new data from a trained run folder or model file",
                        formatter_class=fmt)
    en.add_argument("model", type=Path, help="a run folder (its checkpoints/final.pt) or a model file (est.save)")
    en.add_argument("--data", type=Path, nargs="+", required=True,
                    help="one .npz (view0, view1, …, optional mask), one CSV per view, raw as in training, or a "
                         "folder of the on-disk format (viewsplit convert; memory-mapped, read in batches)")
    en.add_argument("--out", type=Path, required=True,
                    help="an .npz (one float32 array per representation, all held in memory), or a folder: one "
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

"""Run folders: train, evaluate and report, as the CLI and the Python API use them.

A run folder holds ``config.yaml`` (the resolved config), ``checkpoints/`` (``last.pt`` while
training, ``final.pt`` when done), ``log.jsonl``, ``metrics.json``, ``metrics.md`` and, after
``viewsplit run`` or ``viewsplit plot``, ``plots/``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import threads
from ..config import RunConfig, build_config, load_config
from ..data.multiview import DataSplits, MultiViewDataset
from ..data.registry import load_dataset
from ..data.stats import check_trainable
from ..distributed import DistContext, init_distributed
from ..errors import CheckpointError, ConfigError, ViewsplitError
from ..eval.checks import check_evaluable
from ..files import Staged, check_run_folder, is_run_folder, run_lock, same_file
from ..methods import build_method
from ..methods.base import DataSpec, Method
from ..methods.fusion import Fusion
from . import checkpoint as ckpt
from .logger import opening_line
from .trainer import Trainer, resolve_device

log = logging.getLogger(__name__)


@dataclass
class Run:
    """A trained (or training) model with its config, data and folder."""

    cfg: RunConfig
    method: Method
    splits: DataSplits
    run_dir: Path
    device: torch.device
    is_main: bool = True                # False on the ranks > 0 of a distributed run


def default_run_dir(cfg: RunConfig) -> Path:
    return Path("runs") / f"{cfg.data.name}-{cfg.method}-{time.strftime('%Y%m%d-%H%M%S')}"


def build(cfg: RunConfig, train: MultiViewDataset) -> Method:
    """The method for ``cfg``: weights initialised from ``train.seed``, standardisation
    (``data.standardize``) fitted on ``train``.  The CLI and the estimators both start here; a view that no
    training sample has is refused, and a constant one warned of, first (:func:`~.data.stats.check_trainable`)."""
    check_trainable(train)
    ckpt.seed_everything(cfg.train.seed)
    method = build_method(cfg.method, cfg.model, DataSpec.of(train))
    if isinstance(method, Fusion):   # supervised (DMRNet too): every training sample needs a label
        method.check_labels(train)
    method.preprocess.fit(train, cfg.data.standardize)
    return method


def standardised(method: Method, splits: DataSplits) -> DataSplits:
    """``splits`` with the model's standardisation applied to both splits."""
    pre = method.preprocess
    info = dict(splits.info, standardisation=pre.describe())
    return DataSplits(pre.transform(splits.train), pre.transform(splits.test), splits.cluster_on, info)


def prepare(cfg: RunConfig, run_dir: Path, ctx: DistContext | None = None) -> Run:
    """Load the data and build the method (:func:`build`); the splits are returned standardised."""
    ctx = ctx or DistContext()
    device = resolve_device(cfg.train.device, ctx)
    splits = load_dataset(cfg.data)
    method = build(cfg, splits.train)
    return Run(cfg, method, standardised(method, splits), Path(run_dir), device, ctx.is_main)


def train(cfg: RunConfig, run_dir: str | Path | None = None, resume: bool = False,
          allow_changed: Sequence[str] = (), check_eval: bool = False) -> Run:
    """Train every stage into ``run_dir``; with ``resume``, continue the run saved there.

    ``allow_changed`` names config keys (``stages.*`` / ``train.*``, wildcards allowed) that may differ from
    the saved run on resume; ``check_eval`` first checks that the evaluation can run (labels, ``eval.*``).
    ``run_dir`` must be new, empty or a viewsplit run folder (:func:`viewsplit.files.check_run_folder`); it is
    locked while training writes it (:func:`viewsplit.files.run_lock`), and nothing is written in it before
    every check (data, config, resume) has passed.
    """
    run, ctx = _start(cfg, run_dir, resume, check_eval)
    with _locked(run):
        _fit(run, ctx, resume, allow_changed)
    return run


def _start(cfg: RunConfig, run_dir: str | Path | None, resume: bool, check_eval: bool) -> tuple[Run, DistContext]:
    """The checks that need no training, and the run prepared; writes nothing."""
    if resume and run_dir is None:
        raise ConfigError("--resume: name the run folder to continue with --out RUN_DIR")
    run_dir = Path(run_dir).expanduser() if run_dir else default_run_dir(cfg)
    check_run_folder(run_dir)
    _check_checkpoint(run_dir, resume)
    device_type = "cuda" if cfg.train.device.startswith("cuda") or (
        cfg.train.device == "auto" and torch.cuda.is_available()) else "cpu"
    ctx = init_distributed(device_type)
    run = prepare(cfg, run_dir, ctx)
    if check_eval and ctx.is_main:
        check_evaluable(run.method, run.splits, cfg.eval)
    if ctx.is_main:
        log.info(opening_line(run, resume))
    return run, ctx


def _check_checkpoint(run_dir: Path, resume: bool) -> None:
    """``resume`` needs ``last.pt``; a new run must not find one."""
    last = run_dir / "checkpoints" / "last.pt"
    if resume and not last.exists():
        raise ConfigError(f"--resume: no checkpoint at {last}; nothing to resume")
    if not resume and last.exists():
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")


def _locked(run: Run) -> contextlib.AbstractContextManager:
    """The run folder's lock, held by the main process (the other DDP ranks write nothing)."""
    return run_lock(run.run_dir) if run.is_main else contextlib.nullcontext()


def _fit(run: Run, ctx: DistContext, resume: bool, allow_changed: Sequence[str]) -> None:
    """Train under the lock; the checkpoint is checked again, as another process may have written the folder
    between :func:`_start` and the lock."""
    if run.is_main:
        _check_checkpoint(run.run_dir, resume)
    Trainer(run.cfg, run.method, run.splits.train, run.run_dir, ctx, run.device).fit(
        resume, allow_changed, config_file=run.run_dir / "config.yaml")
    ctx.close()


def checkpoint_path(path: str | Path, checkpoint: str = "final") -> Path:
    """A model file, or ``<run folder>/checkpoints/<checkpoint>.pt``."""
    path = Path(path)
    if path.is_file() or path.suffix == ".pt":
        if not path.exists():
            raise ConfigError(f"{path}: no such model file")
        return path
    if not path.is_dir():
        raise ConfigError(f"{path}: not a run folder or model file (no such folder)")
    ckpt_file = path / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt_file.exists():
        have = sorted(p.stem for p in (path / "checkpoints").glob("*.pt"))
        hint = f" Available: {', '.join(have)}." if have else ""
        if have == ["last"] and checkpoint == "final":
            hint = " Training has not finished: resume it with `viewsplit train CONFIG --out RUN --resume`."
        raise ConfigError(f"{ckpt_file}: no such checkpoint.{hint}")
    return ckpt_file


def load_model(path: str | Path, device: str | None = None, checkpoint: str = "final"
               ) -> tuple[RunConfig, Method, torch.device]:
    """The trained model of a run folder or model file, in eval mode; needs no data."""
    path = checkpoint_path(path, checkpoint)
    state = ckpt.load(path)
    try:
        cfg = build_config(state["config"])
        spec = DataSpec.from_dict(state["spec"])
        method = build_method(cfg.method, cfg.model, spec)
    except ViewsplitError as err:
        raise CheckpointError(f"{path}: its saved config cannot be rebuilt ({err})") from None
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: its saved config or data description is incomplete or damaged "
                              f"({type(err).__name__}: {err})") from None
    load_weights(method, state["model"], path)
    if device:
        cfg.train.device = device
    dev = resolve_device(cfg.train.device, DistContext())
    return cfg, method.to(dev).eval(), dev


def load_weights(method: Method, weights: Any, path: Path) -> None:
    """``method.load_state_dict(weights)``, strictly; a mismatch is a :class:`CheckpointError` naming ``path`` and
    the first missing, unexpected or differently shaped entries (never silently ignored)."""
    own = method.state_dict()
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: the saved weights are not a state dict (got {type(weights).__name__})")
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [f"{k} {tuple(weights[k].shape)} saved, {tuple(own[k].shape)} expected" for k in own
              if k in weights and getattr(weights[k], "shape", None) != own[k].shape]
    problems = [f"{what}: {', '.join(map(str, keys[:3]))}{', …' if len(keys) > 3 else ''}"
                for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)) if keys]
    if problems:
        raise CheckpointError(f"{path}: the saved weights do not match the model its saved config builds "
                              f"({method.name}): {'; '.join(problems)} (the file is damaged or was edited)")
    try:
        method.load_state_dict(weights)
    except (RuntimeError, TypeError) as err:
        raise CheckpointError(f"{path}: the saved weights cannot be loaded ({str(err).splitlines()[0]})") from None


def load_run(run_dir: str | Path, device: str | None = None, checkpoint: str = "final") -> Run:
    """Rebuild a trained model from ``run_dir/checkpoints/<checkpoint>.pt`` with its (standardised) data."""
    cfg, method, dev = load_model(run_dir, device, checkpoint)
    splits = load_dataset(cfg.data)
    if method.spec.view_shapes != DataSpec.of(splits.train).view_shapes:
        raise ConfigError(f"{run_dir}: the checkpoint's view shapes {method.spec.view_shapes} differ from the data's "
                          f"{DataSpec.of(splits.train).view_shapes}")
    return Run(cfg, method, standardised(method, splits), Path(run_dir), dev)


def evaluate_run(run: Run, out_dir: Path | None = None) -> dict:
    """Run the evaluation suite and write ``metrics.json``, ``metrics.md`` (and figures) to ``out_dir``
    (default: the run folder)."""
    from ..eval.evaluate import evaluate, markdown

    check_evaluable(run.method, run.splits, run.cfg.eval, run.device)
    out_dir = _report_dir(run, out_dir)
    t0 = time.perf_counter()
    # torch, BLAS and OpenMP alike
    with threads.limited(run.cfg.train.threads, run.splits.train.view_shapes):
        metrics = evaluate(run.method, run.splits, run.cfg.eval, run.device)
        if run.cfg.eval.raw_baselines:
            from ..eval.baselines import add_raw_baselines, baseline_dims

            add_raw_baselines(metrics, run.splits, run.cfg.eval, run.device,
                              baseline_dims(run.method, run.splits.train, run.device), run.method.preprocess)
    timing = {"eval_seconds": round(time.perf_counter() - t0, 2)}
    last = run.run_dir / "checkpoints" / "last.pt"
    if last.exists():
        timing = {"train_seconds": round(ckpt.load(last)["train_seconds"], 2), **timing}
    metrics["timing"] = timing
    warned = training_warnings(run.run_dir)
    if warned:
        metrics["training_warnings"] = warned
    with Staged(out_dir) as out:   # the report appears whole or not at all
        out.write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
        out.write_text(out_dir / "metrics.md", markdown(metrics, run.splits.train.view_names))
        if run.cfg.eval.figures:
            save_figures(run, out_dir, staged=out)
    return metrics


def training_warnings(run_dir: Path) -> list[str]:
    """The warnings training logged (e.g. an invalid CLUB bound), one line per stage and message."""
    path = run_dir / "log.jsonl"
    if not path.exists():
        return []
    seen: dict[str, list[int]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for msg in row.get("warnings", []):
            key = f"stage {row['stage']!r}: {re.sub(r' [(][^()]* nats[)]', '', msg)}"
            seen.setdefault(key, []).append(row["epoch"] + 1)
    return [f"{msg} (epochs {', '.join(map(str, ep))})" for msg, ep in seen.items()]


def evaluate_missing_run(run: Run, out_dir: Path | None = None) -> dict:
    """The missing-view protocol (:mod:`viewsplit.eval.missing`); writes ``missing.json`` and ``missing.md``
    to ``out_dir`` (default: the run folder)."""
    from ..eval.missing import evaluate_missing, markdown

    check_evaluable(run.method, run.splits, run.cfg.eval, run.device)
    out_dir = _report_dir(run, out_dir)
    t0 = time.perf_counter()
    with threads.limited(run.cfg.train.threads, run.splits.train.view_shapes):
        result = evaluate_missing(run.method, run.splits, run.cfg.eval, run.device)
    result["timing"] = {"eval_seconds": round(time.perf_counter() - t0, 2)}
    with Staged(out_dir) as out:
        out.write_text(out_dir / "missing.json", json.dumps(result, indent=2))
        out.write_text(out_dir / "missing.md", markdown(result))
    return result


#: what an evaluation writes into its report folder
REPORT_FILES = frozenset({"metrics.json", "metrics.md", "missing.json", "missing.md", "figures"})


def _report_dir(run: Run, out_dir: Path | None) -> Path:
    """Where an evaluation writes its report: the run folder, or ``out_dir`` when it is new, empty, a run
    folder or an earlier report folder (holding only :data:`REPORT_FILES`); checked before evaluating."""
    if out_dir is None:
        return run.run_dir
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir}: is a file; give a folder for the report")
    if is_run_folder(out_dir) and not same_file(out_dir, run.run_dir):
        raise ConfigError(f"--out {out_dir}: is another run's folder; its report would be replaced, so write the "
                          "report into a new or empty folder")
    if out_dir.is_dir() and not is_run_folder(out_dir) and any(p.name not in REPORT_FILES for p in out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir}: holds files that are not a viewsplit report; write the report into a "
                          "new or empty folder, a run folder or an earlier report folder")
    return out_dir


def save_figures(run: Run, out_dir: Path | None = None, n: int = 8, staged: Staged | None = None) -> list[Path]:
    """Write the method's image grids (first ``n`` test samples) to ``<out_dir or run>/figures/*.png``
    (through ``staged`` when given, else each atomically)."""
    visualise = getattr(run.method, "visualise", None)
    if visualise is None or not any(len(s) == 3 for s in run.splits.test.view_shapes):
        return []
    from ..eval.prediction import save_grid

    batch = run.splits.test.batch(torch.arange(min(n, len(run.splits.test)))).to(run.device)
    run.method.eval()
    with torch.no_grad():
        grids = visualise(batch.views, batch.mask)
    folder = (out_dir or run.run_dir) / "figures"
    paths = []
    with contextlib.nullcontext(staged) if staged is not None else Staged(folder) as out:
        for name, rows in grids.items():
            save_grid(out.path(folder / f"{name}.png"), [r.float().cpu() for r in rows])
            paths.append(folder / f"{name}.png")
    return paths


def run_all(cfg: RunConfig, run_dir: str | Path | None = None, resume: bool = False,
            allow_changed: Sequence[str] = ()) -> tuple[Run, dict | None]:
    """Train every stage, evaluate and write the report (evaluation on rank 0 only), then the plots
    (:func:`save_plots`) when ``eval.plots`` is on and matplotlib is installed; the evaluation's settings
    and labels are checked before training."""
    run, ctx = _start(cfg, run_dir, resume, check_eval=True)
    with _locked(run):
        _fit(run, ctx, resume, allow_changed)
        if not run.is_main:
            return run, None
        metrics = evaluate_run(run)
        if cfg.eval.plots and importlib.util.find_spec("matplotlib") is None:
            log.info("plots skipped: matplotlib is not installed (pip install 'viewsplit[plots]')")
        elif cfg.eval.plots:
            save_plots(run)
    return run, metrics


def save_plots(run: Run, out_dir: Path | None = None, **options: Any) -> list[Path]:
    """:func:`viewsplit.eval.plots.save_plots` for a run: maps of its test codes (at most ``eval.plot_points``
    samples, seed 0, unless ``options`` say otherwise) and its loss curves, in ``out_dir`` (default
    ``<run>/plots``)."""
    from ..eval import plots

    options = {"max_points": run.cfg.eval.plot_points, "seed": 0, **options}
    return plots.save_plots(run.method, run.splits.test, run.run_dir / "log.jsonl",
                            Path(out_dir) if out_dir else run.run_dir / "plots", batch_size=run.cfg.eval.batch_size,
                            device=run.device, **options)


__all__ = ["Run", "build", "evaluate_missing_run", "evaluate_run", "load_config", "load_model", "load_run", "prepare",
           "run_all", "save_plots", "standardised", "train"]

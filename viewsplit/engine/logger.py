"""Run logging: a JSONL file of step and epoch rows, plus TensorBoard when it is installed; plain progress
lines on the ``viewsplit`` logger (the CLI prints them to stderr)."""
from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger("viewsplit")


class RunLogger:
    """Appends rows to ``<run>/log.jsonl``; mirrors numeric terms to TensorBoard (``<run>/tb``)."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "log.jsonl"
        self.fh = None
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a", buffering=1)  # noqa: SIM115  (open for the whole run; close() closes it)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def log(self, row: dict) -> None:
        if not self.enabled or self.fh is None:
            return
        row = {"time": round(time.time(), 3), **row}
        try:
            self.fh.write(json.dumps(row) + "\n")
        except OSError as err:   # e.g. a full disk: name the log, not a bare errno
            raise OSError(err.errno, f"cannot write the training log ({err.strerror})", str(self.path)) from None
        if self.tb is not None and row.get("kind") in ("step", "epoch"):
            for k, v in row.items():
                if isinstance(v, float) and k not in ("time",):
                    self.tb.add_scalar(f"{row['kind']}/{row.get('stage', '')}/{k}", v, row.get("global_step", 0))

    def close(self) -> None:
        if self.fh is not None:
            with contextlib.suppress(OSError):   # a failed write has been reported; closing must not mask it
                self.fh.close()
            self.fh = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s // 60 % 60:02d}m"


_PER_VIEW_TERM = re.compile(r"_\d+$")


def headline_terms(terms: dict[str, float], limit: int = 6) -> list[tuple[str, float]]:
    """The loss terms a progress line shows, at most ``limit``: totals before per-view terms (``club_0``,
    ``nll_nats_1``), and the model's step (``model/…``, or unprefixed) before other steps' (a critic's)."""
    def rank(item: tuple[str, float]) -> tuple[bool, bool]:
        step, _, term = item[0].rpartition("/")
        return bool(_PER_VIEW_TERM.search(term)), step not in ("", "model")

    return sorted(terms.items(), key=rank)[:limit]   # stable: each step's own order within a rank


class ProgressLines:
    """Plain progress lines for logs, pipes and CI: stage, epoch, step, loss terms, elapsed time and the stage's
    ETA, after the first step, then at most one per ``every`` seconds, and after the stage's last step."""

    def __init__(self, stage: str, epochs: int, n_batches: int, total: int, every: float):
        """``total``: the stage's optimiser steps (``epochs × n_batches``, or fewer when a ``steps`` budget
        cuts the last epoch short)."""
        self.stage, self.epochs, self.n_batches, self.total, self.every = stage, epochs, n_batches, total, every
        self.t0 = time.perf_counter()
        self.last = float("-inf")
        self.steps = 0

    def update(self, epoch: int, batch: int, terms: dict[str, float]) -> None:
        self.steps += 1
        now = time.perf_counter()
        left = self.total - (epoch * self.n_batches + batch + 1)
        if now - self.last < self.every and left > 0:
            return
        self.last = now
        elapsed = now - self.t0
        loss = ", ".join(f"{k} {v:.4g}" for k, v in headline_terms(terms))
        in_epoch = min(self.n_batches, self.total - epoch * self.n_batches)
        log.info(f"{self.stage}: epoch {epoch + 1}/{self.epochs}, step {batch + 1}/{in_epoch} | {loss} | "
                 f"elapsed {duration(elapsed)}, stage ETA {duration(elapsed / self.steps * left)}")


def opening_line(run: Run, resume: bool = False) -> str:
    """What ``viewsplit train`` / ``run`` / ``demo`` is about to do: the method and its stages, the data (name,
    samples, views and their shapes) and the run folder."""
    train, test = run.splits.train, run.splits.test
    shapes = ", ".join("×".join(map(str, shape)) for shape in train.view_shapes)
    stages = ", ".join(f"{name} {s.epochs} epochs" if s.epochs is not None else f"{name} {s.steps} steps"
                       for name, s in run.cfg.stages.items())
    return (f"{'resuming' if resume else 'training'} {run.cfg.method} ({stages}) on {run.cfg.data.name}: "
            f"{len(train)} train + {len(test)} test samples, {train.n_views} views ({shapes}); "
            f"run folder {run.run_dir}")


class Countdown:
    """One progress line per unit of work (a MINE fit, a view combination): what starts, ``i/n``, the time
    elapsed and an ETA from the units done so far; then a last line with the total time."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.done = what, total, 0
        self.t0 = time.perf_counter()

    def start(self, unit: str) -> None:
        """Log that the next unit (``unit`` names it) starts."""
        elapsed = time.perf_counter() - self.t0
        eta = (f"ETA {duration(elapsed / self.done * (self.total - self.done))}" if self.done
               else "ETA after the first")
        log.info(f"{self.what}: {unit} ({self.done + 1}/{self.total}) | elapsed {duration(elapsed)}, {eta}")
        self.done += 1

    def finish(self) -> None:
        log.info(f"{self.what}: done, {self.total} in {duration(time.perf_counter() - self.t0)}")

"""Run logging: a JSONL file of step and epoch rows, plus TensorBoard when it is installed; plain progress
lines on the ``viewsplit`` logger (the CLI prints them to stderr)."""
from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

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
        loss = ", ".join(f"{k} {v:.4g}" for k, v in list(terms.items())[:6])
        in_epoch = min(self.n_batches, self.total - epoch * self.n_batches)
        log.info(f"{self.stage}: epoch {epoch + 1}/{self.epochs}, step {batch + 1}/{in_epoch} | {loss} | "
                 f"elapsed {duration(elapsed)}, stage ETA {duration(elapsed / self.steps * left)}")

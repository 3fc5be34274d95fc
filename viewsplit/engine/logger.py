"""Run logging: a JSONL file of step and epoch rows, plus TensorBoard when it is installed."""
from __future__ import annotations

import json
import time
from pathlib import Path


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
        self.fh = open(self.path, "a", buffering=1)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def log(self, row: dict) -> None:
        if not self.enabled:
            return
        row = {"time": round(time.time(), 3), **row}
        self.fh.write(json.dumps(row) + "\n")
        if self.tb is not None and row.get("kind") in ("step", "epoch"):
            for k, v in row.items():
                if isinstance(v, float) and k not in ("time",):
                    self.tb.add_scalar(f"{row['kind']}/{row.get('stage', '')}/{k}", v, row.get("global_step", 0))

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        if self.tb is not None:
            self.tb.close()
            self.tb = None

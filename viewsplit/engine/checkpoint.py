"""Atomic checkpoints and RNG state capture.

A checkpoint is a dict saved with ``torch.save`` to a temporary file in the same folder, then
``os.replace``-d over the target, so a kill at any moment leaves either the old or the new
checkpoint, never a torn one.  Layout of ``checkpoints/last.pt``::

    {"format": 1, "viewsplit": version, "config": run config dict, "spec": DataSpec dict,
     "model": state_dict, "stage_index": i, "epoch": completed epochs of that stage,
     "batch": completed batches of the current epoch, "optimizers": {step: state_dict},
     "rng": {"torch", "cuda", "numpy", "python"}, "train_seconds": float, "done": bool}

``checkpoints/final.pt`` holds only what is needed to rebuild the trained model
(config, spec, model) and is written once training has finished.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError

FORMAT = 1


def atomic_save(obj: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path: str | Path) -> dict:
    """A checkpoint's dict; an unreadable or foreign file is a :class:`CheckpointError` naming it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load raises many types for a torn or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a viewsplit checkpoint (holds a {type(state).__name__})")
    return state


def remove_orphans(folder: str | Path) -> None:
    """Delete temporary files that a kill during :func:`atomic_save` left behind in ``folder``."""
    for tmp in Path(folder).glob(".*.tmp*"):
        tmp.unlink(missing_ok=True)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

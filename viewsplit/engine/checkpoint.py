"""Atomic checkpoints and RNG state capture.

A checkpoint is a dict saved with ``torch.save`` to a temporary file in the same folder, then
``os.replace``-d over the target, so a kill at any moment leaves either the old or the new
checkpoint, never a torn one; a failed write leaves the old one (:func:`atomic_save`).
Layout of ``checkpoints/last.pt``::

    {"format": 2, "viewsplit": version, "config": run config dict, "spec": DataSpec dict,
     "model": state_dict, "stage_index": i, "epoch": completed epochs of that stage,
     "batch": completed batches of the current epoch, "optimizers": {step: state_dict},
     "rng": {"torch", "cuda", "numpy", "python"}, "train_seconds": float, "done": bool}

``checkpoints/final.pt`` holds only what is needed to rebuild the trained model
(config, spec, model, the model's standardisation inside its state_dict) and is written once
training has finished; a model file (``est.save``) has the same layout.

Every file is read with ``torch.load(weights_only=True)``: only tensors and plain containers are
unpickled, never arbitrary objects, so loading someone else's file cannot run code.  RNG states are
therefore stored as tensors and plain tuples.
"""
from __future__ import annotations

import io
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import __version__
from ..errors import CheckpointError
from ..files import write_bytes

if TYPE_CHECKING:
    from ..config import RunConfig
    from ..methods.base import Method

#: 2: weights_only-safe RNG states, standardisation buffers in the model's state_dict
FORMAT = 2


def atomic_save(obj: dict, path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically: serialised in memory, then written to a temporary file
    that is renamed over ``path``.  A failed write (disk full, file-size limit, permissions) raises the
    ``OSError`` naming its cause, removes the temporary file and leaves an existing ``path`` untouched."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getbuffer())


def load(path: str | Path) -> dict:
    """A checkpoint or model file, unpickled safely (``weights_only``) and checked to be of this format."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except Exception as err:  # torch raises many types for truncated, foreign or unsafe files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable viewsplit checkpoint or model file (corrupt, truncated, "
                              f"or holding objects other than tensors and plain values: {first})") from None
    if not isinstance(state, dict) or not {"format", "config", "spec", "model"} <= set(state):
        raise CheckpointError(f"{path}: not a viewsplit checkpoint or model file (missing format/config/spec/model)")
    if state["format"] != FORMAT:
        raise CheckpointError(f"{path}: file format {state['format']} (written by viewsplit "
                              f"{state.get('viewsplit', '?')}); this viewsplit {__version__} reads format {FORMAT}. "
                              "Retrain the model with this version, or load it with the version that wrote it.")
    return state


def model_state(cfg: RunConfig, method: Method) -> dict:
    """What a model file and ``final.pt`` hold: everything to rebuild the trained model, no data."""
    return {"format": FORMAT, "viewsplit": __version__, "config": cfg.to_dict(), "spec": method.spec.to_dict(),
            "model": method.state_dict()}


def remove_orphans(folder: str | Path) -> None:
    """Delete temporary files that a kill during :func:`atomic_save` left behind in ``folder``."""
    for tmp in Path(folder).glob(".*.tmp*"):
        tmp.unlink(missing_ok=True)


def rng_state() -> dict:
    """Every RNG's state as tensors and plain tuples (readable with ``weights_only``)."""
    legacy = np.random.get_state()
    assert isinstance(legacy, tuple)   # legacy=True, the default, gives the tuple form
    kind, keys, pos, has_gauss, gauss = legacy
    state = {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                      gauss), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

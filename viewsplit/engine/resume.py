"""Whether a checkpoint may be resumed with a config: ``--resume`` is exact unless told otherwise.

A resume continues the saved run bit for bit, so the config must equal the saved one except for the keys
named with ``--allow-changed`` (``stages.*`` / ``train.*``, ``fnmatch`` wildcards) and the settings that do
not change the numbers (device, progress, TensorBoard, ``eval.*``).  The thread count is checked too, as
another count changes floating-point sums.  Every differing key is named at once; a finished run refuses
any change, as it would not be applied.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..errors import ConfigError

#: the settings that may differ on resume without --allow-changed: they do not change the trained numbers
IGNORED = {("train", "device"), ("train", "progress"), ("train", "progress_every"), ("train", "tensorboard"),
           ("train", "threads"), ("eval",)}


def check_resumable(state: dict, cfg: RunConfig, allow_changed: Sequence[str], ckpt_path: Path) -> None:
    """A :class:`ConfigError` when ``cfg`` may not continue the checkpoint ``state`` (read from ``ckpt_path``)."""
    for pattern in allow_changed:
        if pattern.split(".")[0] not in ("stages", "train"):
            raise ConfigError(f"--allow-changed {pattern}: only stages.* and train.* settings may change on "
                              "resume; the others define the model and data the checkpoint was trained on")

    def allowed(key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, p) or key.startswith(p + ".") for p in allow_changed)

    changed = [".".join(map(str, k)) for k in _diff(state["config"], cfg.to_dict())
               if not any(k[: len(i)] == i for i in IGNORED)]
    if state.get("done") and changed:
        raise ConfigError(f"{ckpt_path.parent.parent}: this run has finished training; the config differs from the "
                          f"saved run in {', '.join(changed)}, and these settings were not applied (nothing was "
                          "trained or written). To train with them, start a new run folder (another --out).")
    diffs = [k for k in changed if not allowed(k)]
    fixed = [k for k in diffs if k.split(".")[0] not in ("stages", "train")]
    if fixed:
        raise ConfigError(f"cannot resume {ckpt_path}: the config differs from the saved run in {', '.join(diffs)}; "
                          f"{', '.join(fixed)} define the model and data the checkpoint was trained on and cannot "
                          "change. Resume with the run's own config.yaml or start a new run folder.")
    if diffs:
        raise ConfigError(f"cannot resume {ckpt_path}: the config differs from the saved run in {', '.join(diffs)}. "
                          "Resume with the run's own config.yaml, start a new run folder, or accept the changes with "
                          f"--allow-changed {','.join(diffs)}")
    threads, now_threads = state.get("threads"), torch.get_num_threads()
    if threads is not None and threads != now_threads and not state.get("done") and not allowed("train.threads"):
        raise ConfigError(f"cannot resume {ckpt_path}: it trained with {threads} threads, this process has "
                          f"{now_threads}; another thread count changes floating-point sums, so the result would "
                          f"not match an uninterrupted run. Set train.threads={threads}, or accept the "
                          "difference with --allow-changed train.threads.")


def _diff(a: Any, b: Any, prefix: tuple = ()) -> list[tuple]:
    """The key paths where the nested dicts ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), (*prefix, k))
        return out
    return [] if a == b else [prefix]

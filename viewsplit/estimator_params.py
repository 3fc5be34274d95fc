"""Estimator parameters ↔ run configs: :func:`config_of` builds the run config an estimator's parameters stand
for, :func:`params_of` / :func:`preset_params` the parameters that stand for a run config or preset.  What
scikit-learn users pass is made plain and checked on the way:

- numpy scalars (``np.int64(8)``, ``np.float32(1e-3)``, e.g. from a ``GridSearchCV`` grid over ``np.arange``)
  become Python numbers, in nested sections and lists too (:func:`plain_params`);
- ``random_state`` is None (a fresh seed drawn from numpy's global generator), an integer in
  ``train.seed``'s range [0, 2**31 − 1], or a ``np.random.RandomState`` / ``np.random.Generator`` from which
  one seed is drawn, as scikit-learn's ``check_random_state(rs).randint(...)`` does (:func:`seed_of`);
- a setting that follows another one (:data:`DERIVED`) defaults to ``"auto"``: the preset's value, adapted
  to the setting it follows, so that a grid over that one (e.g. ``out_dim``) never builds an impossible
  model; an explicit value is kept and checked as given (:func:`resolve_derived`).
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from .config import RunConfig, build_config, merge
from .errors import ConfigError
from .typed import MAX_SEED, check_seed, plain

#: training settings that apply to every stage
EVERY_STAGE = ("epochs", "steps", "batch_size", "lr")

#: the value of a derived setting that follows the setting it depends on
AUTO = "auto"


def _at_most(base: str) -> Callable[[dict[str, Any], Any], Any]:
    """The preset's value lowered to the model's ``base`` setting (None, i.e. all, stays None)."""
    def rule(model: dict[str, Any], preset: Any) -> Any:
        limit = model.get(base)
        if preset is None or not isinstance(limit, int) or isinstance(limit, bool):
            return preset   # an invalid base setting is named by the config check
        return min(preset, limit)
    return rule


def _hidden_only(model: dict[str, Any], preset: Any) -> Any:
    """MRDD's view-pairing terms apply to hidden stage-1 targets only: off for ``stage1_targets: all``."""
    return preset if model.get("stage1_targets") == "hidden" else 0.0


#: method → {setting: rule(model settings, the preset's value) → the value "auto" stands for}
DERIVED: dict[str, dict[str, Callable[[dict[str, Any], Any], Any]]] = {
    "dcca": {"top_k": _at_most("out_dim")},
    "softcca": {"align_dim": _at_most("out_dim")},
    "mrdd": {"stage1_align": _hidden_only, "stage1_contrast": _hidden_only},
}

#: what "auto" means for each derived setting, for the estimators' docstrings
DERIVED_DOC = {
    "dcca": "top_k='auto': the preset's top_k, at most out_dim",
    "softcca": "align_dim='auto': the preset's align_dim, at most out_dim",
    "mrdd": "stage1_align='auto', stage1_contrast='auto': the preset's value with stage1_targets='hidden', else 0",
}


def resolve_derived(method: str, model: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    """``model`` with every derived setting left at ``"auto"`` replaced by the value it stands for."""
    out = dict(model)
    for key, rule in DERIVED.get(method, {}).items():
        if isinstance(out.get(key), str) and out[key] == AUTO:
            out[key] = rule(out, preset[key])
    return out


def plain_params(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and numpy arrays as (nested) lists, inside dicts, lists and
    tuples too."""
    if isinstance(value, dict):
        return {k: plain_params(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_params(v) for v in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def seed_of(random_state: Any) -> int:
    """The training seed ``random_state`` stands for (module docstring); a :class:`ConfigError` names it."""
    if random_state is None:
        return int(np.random.randint(MAX_SEED))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(MAX_SEED))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(MAX_SEED))
    seed = plain_params(random_state)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"random_state: expected None, an integer or a numpy RandomState, got {random_state!r}")
    check_seed(seed, "random_state")
    return seed


def signature_default(value: Any) -> Any:
    """A Config default as an immutable estimator default: lists → tuples, nested sections → None."""
    if isinstance(value, list):
        return tuple(value)
    return None if dataclasses.is_dataclass(value) or isinstance(value, dict) else value


def signature_defaults(method: str, model: dict[str, Any]) -> dict[str, Any]:
    """The estimator's defaults for the model settings ``model`` (plain): :func:`signature_default`, and
    ``"auto"`` for the method's derived settings (:data:`DERIVED`)."""
    return {k: AUTO if k in DERIVED.get(method, {}) else signature_default(v) for k, v in model.items()}


def params_of(cfg: RunConfig) -> dict[str, Any]:
    """Estimator parameters that stand for ``cfg`` (every stage setting under ``stages``)."""
    model = {k: signature_default(v) if isinstance(v, list) else v for k, v in plain(cfg.model).items()}
    return {**model, "stages": {k: plain(v) for k, v in cfg.stages.items()}, "standardize": cfg.data.standardize,
            "device": cfg.train.device, "threads": cfg.train.threads, "random_state": cfg.train.seed}


def preset_params(cfg: RunConfig, overrides: dict[str, Any]) -> dict[str, Any]:
    """Parameters that stand for the preset ``cfg`` with ``overrides`` on top (``from_preset``): nested sections
    and ``stages`` merge over the preset's; ``epochs`` / ``steps`` / ``batch_size`` / ``lr`` set every stage."""
    params = params_of(cfg)
    every = {k: overrides[k] for k in EVERY_STAGE if overrides.get(k) is not None}
    stages = {s: merge(st, every) for s, st in params["stages"].items()}
    given = overrides.get("stages")
    params["stages"] = merge(stages, given) if isinstance(given, dict) else stages
    for k, v in overrides.items():
        if k != "stages":
            params[k] = merge(params[k], v) if isinstance(v, dict) and isinstance(params.get(k), dict) else v
    return params


def config_of(method: str, params: dict[str, Any], preset_model: dict[str, Any],
              preset_stages: dict[str, dict[str, Any]], n_samples: int | None = None) -> RunConfig:
    """The validated run config of ``method`` that estimator ``params`` stand for, over the preset's model section
    and stages (``run_config``).  A default batch size above ``n_samples`` is lowered to it; an explicit one kept."""
    p = plain_params(params)
    model = {}
    for k, default in copy.deepcopy(preset_model).items():
        v = p[k]
        if isinstance(default, dict):  # a nested section: a dict of overrides of the preset's
            v = merge(default, v or {})
        model[k] = list(v) if isinstance(v, tuple) else v
    model = resolve_derived(method, model, preset_model)
    every = {k: p[k] for k in EVERY_STAGE if p[k] is not None}
    given = merge({name: dict(every) for name in preset_stages}, p["stages"] or {})
    for name, st in given.items():
        default = preset_stages.get(name, {}).get("batch_size")
        if (n_samples is not None and isinstance(st, dict) and "batch_size" not in st and default is not None
                and default > n_samples):
            st["batch_size"] = n_samples
    stages = merge(copy.deepcopy(preset_stages), given)
    train = {"seed": seed_of(p["random_state"]), "device": p["device"], "threads": p["threads"], "tensorboard": False}
    return build_config({"method": method, "data": {"name": "npz", "standardize": p["standardize"]},
                         "model": model, "stages": stages, "train": train})

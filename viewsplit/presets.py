"""The shipped presets, ``configs/<data set>/<method>.yaml``: finding them by name, and the vector preset
(:data:`VECTOR_PRESET`) whose settings are the estimators' defaults."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .config import CONFIG_DIR, RunConfig, build_config, load_config
from .errors import ConfigError

#: the data set whose presets (``configs/<VECTOR_PRESET>/<method>.yaml``) give the estimators' defaults
VECTOR_PRESET = "handwritten"


_PRESET_NAME = re.compile(r"[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?")


def preset_file(method: str, name: str) -> Path:
    """``configs/<name>/<method>.yaml`` (or ``configs/<name>.yaml`` for ``<folder>/<file>``), checked to exist
    and to configure ``method``; a :class:`ConfigError` lists ``method``'s presets otherwise."""
    path: Path | None = None
    if isinstance(name, str) and _PRESET_NAME.fullmatch(name.removesuffix(".yaml")):
        stem = name.removesuffix(".yaml")
        path = CONFIG_DIR / (f"{stem}.yaml" if "/" in stem else f"{stem}/{method}.yaml")
    if path is None or not path.is_file():
        raise ConfigError(f"preset {name!r}: no {method} preset of that name; available: "
                          f"{', '.join(preset_names(method)) or 'none'} (<data set>/{method}.yaml in {CONFIG_DIR})")
    found = yaml_method(path)
    if found != method:
        raise ConfigError(f"preset {name!r}: {path} configures method {found!r}, not {method!r}; "
                          f"{method}'s presets: {', '.join(preset_names(method))}")
    return path


def preset_names(method: str) -> list[str]:
    """The shipped presets of ``method``: the data set folders with a ``<method>.yaml``, then
    ``<folder>/<file>`` for its other files (e.g. ``edge_mnist/mrdd-reference``)."""
    main = sorted(p.parent.name for p in CONFIG_DIR.glob(f"*/{method}.yaml"))
    other = sorted(f"{p.parent.name}/{p.stem}" for p in CONFIG_DIR.glob("*/*.yaml")
                   if p.stem != method and yaml_method(p) == method)
    return main + other


def yaml_method(path: Path) -> Any:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return raw.get("method") if isinstance(raw, dict) else None


def default_config(method: str) -> tuple[RunConfig, Path | None]:
    """The run config the estimator's default parameters stand for: the vector preset of ``method``,
    else the method's Config and stage defaults; and the preset's path (None for the latter)."""
    path = CONFIG_DIR / VECTOR_PRESET / f"{method}.yaml"
    if not path.is_file():
        return build_config({"method": method}), None
    cfg = load_config(path)
    if cfg.method != method:
        raise TypeError(f"{path}: configures method {cfg.method!r}, not {method!r}")
    return cfg, path

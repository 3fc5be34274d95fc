"""Methods, found by name. Every module in this package that calls ``@register_method`` is
imported on first use, so adding a method means adding its file (and its config and tests)."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import ConfigError
from .base import METHODS, DataSpec, Method, Stage, Step, register_method

__all__ = ["METHODS", "DataSpec", "Method", "Stage", "Step", "available_methods", "build_method",
           "get_method", "register_method"]

_loaded = False


def _discover() -> None:
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            if mod.name != "base" and not mod.name.startswith("_"):
                importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True


def available_methods() -> list[str]:
    _discover()
    return sorted(METHODS)


def get_method(name: str) -> type[Method]:
    _discover()
    if name not in METHODS:
        raise ConfigError(f"method: unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def build_method(method: str, cfg: Any, spec: DataSpec) -> Method:
    """An untrained ``method`` for data ``spec``; ``cfg`` is an instance of the method's ``Config``."""
    return get_method(method)(cfg, spec)

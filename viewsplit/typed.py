"""Typed settings from plain mappings: :func:`from_dict` builds a dataclass from a YAML-loaded mapping,
checking every value against its type hint (:func:`coerce`), and the small value checks the config
dataclasses' ``validate`` methods share.  Every failure is a :class:`ConfigError` naming the key.

It sits below everything that has settings (data, models, methods, the run config) and imports none of them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigError, quote

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

#: the largest integer a config value may hold (torch and numpy store them as int64), and the largest seed
MAX_INT = 2**63 - 1
MAX_SEED = 2**31 - 1


def from_dict(cls: type[T], data: dict[str, Any], key: str) -> T:
    """Build dataclass ``cls`` from a mapping, type-checking every value."""
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: expected a mapping, got {quote(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(f"{key}.{k}: unknown key; valid keys of {key}: {', '.join(names)}")
        kwargs[k] = coerce(v, hints[k], f"{key}.{k}")
    return cls(**kwargs)


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type hint ``tp`` (with safe conversions, e.g. "1e-3" → float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {quote(value)} matches none of {tp}")
    if origin in (list, tuple):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {quote(value)}")
        if origin is list:
            return [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {quote(value)}")
        return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {quote(value)}")
        return {str(k): coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {quote(value)}")
    if tp is int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = int(value)
        if number is None:
            raise ConfigError(f"{key}: expected an integer, got {quote(value)}")
        if abs(number) > MAX_INT:
            raise ConfigError(f"{key}: {quote(number, 40)} is beyond the 64-bit integer range")
        return number
    if tp is float:
        real: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            real = float(value) if abs(value) <= 1e308 else math.inf
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                real = float(value)
        if real is None:
            raise ConfigError(f"{key}: expected a number, got {quote(value)}")
        if not math.isfinite(real):
            raise ConfigError(f"{key}: expected a finite number, got {quote(value, 40)}")
        return real
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {quote(value)}")
    raise ConfigError(f"{key}: unsupported config type {tp}")  # pragma: no cover - a developer error


def plain(obj: Any) -> Any:
    """``obj`` with every dataclass turned into a dict and every tuple into a list (YAML- and JSON-ready)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


def check_positive(value: float, key: str, allow_zero: bool = False) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` is finite and > 0 (or >= 0)."""
    if not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def check_range(value: float, key: str, low: float, high: float) -> None:
    """Raise a ConfigError naming ``key`` unless ``low <= value < high``."""
    if not low <= value < high:
        raise ConfigError(f"{key}: must lie in [{low}, {high}), got {value}")


def check_seed(value: int, key: str) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` is a seed every generator accepts: 0 … 2**31 − 1
    (numpy's legacy seeding takes < 2**32, and runs add small offsets such as the DDP rank)."""
    if not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{key}: a seed must lie in [0, 2**31 - 1], got {quote(value, 40)}")


def check_choice(value: str, options: tuple[str, ...], key: str) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` is one of ``options``."""
    if value not in options:
        raise ConfigError(f"{key}: {quote(value)} is not one of {list(options)}")

"""Exceptions with messages meant for users: each names the key, view or file at fault."""
from __future__ import annotations

from typing import Any

#: the longest message an error carries, and the longest value it quotes: a huge value (a YAML alias bomb, a
#: whole array) is cut in the middle rather than printed whole
MAX_MESSAGE = 2000
MAX_QUOTE = 200


def shorten(text: str, limit: int = MAX_QUOTE) -> str:
    """``text``, or its head and tail around ``…[N characters]…`` when it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}…[{len(text) - head - tail} characters]…{text[-tail:]}"


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` for an error message, shortened to about ``limit`` characters."""
    return shorten(repr(value), limit)


class ViewsplitError(Exception):
    """Base class of viewsplit's user-facing errors (the CLI prints them without a traceback).

    The message is capped at :data:`MAX_MESSAGE` characters, whatever it quotes.
    """

    def __init__(self, message: object = "", *args: object):
        super().__init__(shorten(str(message), MAX_MESSAGE), *args)


class ConfigError(ViewsplitError, ValueError):
    """An unknown key, a wrong type or an impossible value in a run configuration."""


class DataError(ViewsplitError, ValueError):
    """Bad input data; the message names the view, file or key at fault."""


class TrainingError(ViewsplitError, RuntimeError):
    """Training cannot continue (e.g. a non-finite loss term); the last good checkpoint is kept."""


class CheckpointError(ViewsplitError, ValueError):
    """A checkpoint file that cannot be read (truncated, corrupt, or not a viewsplit checkpoint)."""


class MissingDependencyError(ViewsplitError, ImportError):
    """An optional package a feature needs is not installed; the message says which extra installs it."""


class TrainingWarning(UserWarning):
    """Training went on but something is wrong with it (e.g. a bound that stopped being one)."""


class DataWarning(UserWarning):
    """The data can be used but something about it is likely a mistake (e.g. a constant view)."""

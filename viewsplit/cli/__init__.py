"""Command-line interface: ``viewsplit {datasets,methods,bench,train,run,eval,demo,encode,predict,convert,plot}``
(also ``python -m viewsplit``).

One module per command group (:mod:`.catalog`, :mod:`.training`, :mod:`.data`, :mod:`.plot`); this one wires their
parsers together and runs a command.  Every command imports what it needs (torch, the methods) when it
runs, so ``viewsplit --help`` stays fast.
"""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any

from .. import __version__
from ..errors import MAX_MESSAGE, DataWarning, TrainingWarning, ViewsplitError, shorten
from . import catalog, data, plot, training
from .common import HelpWithDefaults, check_options, expand_paths

GROUPS = (catalog, training, data, plot)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="viewsplit", description="Disentangled multi-view representation learning.",
                                formatter_class=HelpWithDefaults)
    p.add_argument("--version", action="version", version=f"viewsplit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub, HelpWithDefaults)
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr``, even after a caller (a test, a notebook) replaced it."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _log_to_stderr() -> None:
    """Progress lines of the ``viewsplit`` logger go to stderr, as ``viewsplit: <message>``."""
    log = logging.getLogger("viewsplit")
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("viewsplit: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """viewsplit's own warnings as one ``viewsplit: warning: …`` line; others as Python shows them."""
    if issubclass(category, (DataWarning, TrainingWarning)):
        print(f"viewsplit: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after options (argparse stops collecting them at the first flag)
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    expand_paths(args)
    _log_to_stderr()
    try:
        check_options(args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.fn(args)
    except ViewsplitError as err:
        print(f"viewsplit: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:   # a file or folder that cannot be read or written; str(err) names it
        print(f"viewsplit: error: {shorten(str(err), MAX_MESSAGE)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        text = str(err)
        if not isinstance(err, MemoryError) and "allocate" not in text and "out of memory" not in text:
            raise   # a bug: keep its traceback
        why = shorten(text.splitlines()[0] if text else "MemoryError", 300)
        print(f"viewsplit: error: out of memory ({why}); lower the model's sizes (model.*), the batch sizes "
              "(stages.*.batch_size, eval.batch_size) or the data", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("viewsplit: interrupted; resume with --resume", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]

"""What the command modules share: the help formatter, config look-up and the report summary.

Nothing here imports torch, so that ``viewsplit --help`` stays fast.
"""
from __future__ import annotations

import argparse
from pathlib import Path


class HelpWithDefaults(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help text states it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        positional = not action.option_strings and action.nargs not in ("*", "?")
        if "default" in text or action.default is argparse.SUPPRESS or positional or action.required:
            return text
        default = action.default
        if isinstance(default, list):
            value = ", ".join(default) or "none"
        else:  # by identity: 0 == False, and a default of 0 is not "off"
            value = "none" if default is None else "off" if default is False else "on" if default is True else default
        return f"{text} (default: {value})"


def config_path(name: str) -> Path:
    """A YAML path, or a shipped config named like ``handwritten/mrdd``.  A missing ``configs/<data>/<method>.yaml``
    (the repository's path, absent where viewsplit was installed as a package) is an error naming the shipped one."""
    from ..config import CONFIG_DIR
    from ..errors import ConfigError

    p = Path(name).expanduser()
    if not p.exists() and p.suffix in (".yaml", ".yml") and len(p.parts) >= 2:
        shipped_name = f"{p.parent.name}/{p.stem}"
        if (CONFIG_DIR / f"{shipped_name}.yaml").is_file():
            raise ConfigError(f"{name}: config file not found here; the shipped config of that name is "
                              f"`{shipped_name}` (e.g. viewsplit run {shipped_name})")
    if p.exists() or p.suffix in (".yaml", ".yml"):
        return p
    shipped = CONFIG_DIR / f"{name}.yaml"
    return shipped if shipped.exists() else p


def expand_paths(args: argparse.Namespace) -> None:
    """Expand ``~`` in every path option and argument (argparse's ``type=Path`` keeps it, which would make a
    folder literally named ``~``)."""
    for key, value in vars(args).items():
        if isinstance(value, Path):
            setattr(args, key, value.expanduser())
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            setattr(args, key, [v.expanduser() for v in value])


def check_options(args: argparse.Namespace) -> None:
    """The options several commands share: ``--device`` (auto, cpu, cuda or cuda:N) and ``--seed``."""
    from ..errors import ConfigError
    from ..typed import check_seed

    device = getattr(args, "device", None)
    if device is not None and not (device in ("auto", "cpu", "cuda") or
                                   (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"--device: must be auto, cpu, cuda or cuda:N, got {device!r}")
    if getattr(args, "seed", None) is not None:
        check_seed(args.seed, "--seed")


def check_count(value: int | None, option: str, minimum: int = 1) -> None:
    """Raise a ConfigError naming ``option`` unless ``value`` is None or at least ``minimum``."""
    from ..errors import ConfigError

    if value is not None and value < minimum:
        raise ConfigError(f"{option}: must be at least {minimum}, got {value}")


def print_summary(metrics: dict, folder: Path, label: str = "run folder") -> None:
    """The report's tables (:func:`viewsplit.eval.evaluate.markdown`) and where it was written."""
    from ..eval.evaluate import markdown

    print(markdown(metrics))
    print(f"{label}: {folder}")

"""Exceptions with messages meant for users: each names the key, view or file at fault."""


class ViewsplitError(Exception):
    """Base class of viewsplit's user-facing errors (the CLI prints them without a traceback)."""


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

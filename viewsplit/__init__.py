"""viewsplit: disentangled multi-view representation learning.

Learn, for every sample, a consistent representation shared by all views and a specific
representation per view; evaluate them honestly; keep working when views are missing.

``from viewsplit import MRDD`` (and the other estimators, :func:`load`, :class:`SplitViews`) imports
:mod:`viewsplit.estimators` on first use, so ``import viewsplit`` and ``viewsplit --help`` stay light.
"""
import os as _os
import sys as _sys
from typing import Any

# OpenMP threads that sleep instead of spinning while they wait: on cores shared with other processes,
# spinning made training 5× slower (viewsplit/threads.py).  The runtime reads this when torch loads it.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = ("MRDD", "MIB", "DeCUR", "SoftCCA", "FAE", "DCCA", "DMRNet", "Fusion", "Autoencoder", "SplitViews", "load")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'viewsplit' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]

"""BatchNorm re-calibration: recompute running statistics on the data a model will see."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, batches: Iterable, forward: Callable) -> None:
    """Reset every BatchNorm's running mean/var in ``module`` and re-estimate them as exact
    averages (``momentum=None``) over ``forward(batch)`` for each batch, then return to eval mode.

    Used after MRDD's stage 1, whose BN statistics were gathered on masked inputs but are applied
    to unmasked ones (docs/methods.md#mrdd-reference-code-defects (D4)).  Idempotent for a fixed batch sequence.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    try:
        for batch in batches:
            forward(batch)
    finally:
        for m, mom in zip(norms, saved):
            m.momentum = mom
        module.eval()

"""Running a network on the samples where a view is present (docs/evaluation.md#missing-views)."""
from __future__ import annotations

from torch import Tensor, nn


def apply_present(net: nn.Module, x: Tensor, present: Tensor) -> Tensor:
    """``net(x)`` for the samples where ``present`` is True and zeros elsewhere.

    Absent samples never reach ``net``: their (arbitrary) values cannot change any output, nor
    BatchNorm statistics.  In training mode a single present sample is duplicated so that
    BatchNorm sees a batch of two; with no present sample the output is all zeros (the network runs
    on an empty batch, which leaves BatchNorm statistics finite).
    """
    if bool(present.all()):
        return net(x)
    idx = present.nonzero(as_tuple=True)[0]
    sub = x[idx]
    out = net(sub.expand(2, *sub.shape[1:]))[:1] if net.training and idx.numel() == 1 else net(sub)
    full = out.new_zeros(x.shape[0], *out.shape[1:])
    return full.index_copy(0, idx, out)

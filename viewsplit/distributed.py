"""``torch.distributed`` plumbing below both the losses and the engine: process groups launched by
``torchrun`` and autograd-aware gathers for batch-statistic losses.

Launch with ``torchrun --nproc_per_node=N -m viewsplit train CONFIG``: the engine reads
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, uses gloo on CPU and nccl on CUDA, shards every epoch
across ranks and wraps each optimiser step's modules in ``DistributedDataParallel``.

Losses built on batch statistics gather the global batch with :func:`gather`, which is
autograd-aware (``torch.distributed.nn.functional.all_gather``): a raw ``dist.all_gather`` is
invisible to autograd and makes gradients wrong by a factor of the world size (lightly #1977).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    def close(self) -> None:
        """Leave the process group this context created, after a barrier.

        Without the barrier a rank that finishes first tears down its gloo connections (and, on
        rank 0, the rendezvous store) while another rank still uses them, which can abort it.
        """
        if self.owns_group and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistContext:
    """Join the process group when launched by torchrun (``close`` leaves it); a no-op for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B_r, …) from every rank along dim 0, keeping gradients to every slice.

    Without an initialised process group this returns ``x`` unchanged, so losses that call it
    behave identically in single-process runs.  All ranks must pass the same trailing shape.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    counts = [int(s.item()) for s in sizes]
    if len(set(counts)) == 1:
        return torch.cat(all_gather(x), 0)
    # uneven shards: pad to the largest, gather, then strip the padding
    pad = max(counts) - x.shape[0]
    padded = torch.cat([x, x.new_zeros(pad, *x.shape[1:])]) if pad else x
    parts = all_gather(padded)
    return torch.cat([p[:n] for p, n in zip(parts, counts)], 0)


def mean_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average a dict of floats over ranks (for logging only)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def _flat_collective(tensors: Sequence[Tensor], op: Callable[[Tensor], None]) -> None:
    """Apply the in-place collective ``op`` to ``tensors`` flattened into one buffer per dtype and device
    (one call instead of one per tensor; any memory layout), then copy the result back."""
    groups: dict[tuple, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for (dtype, _), ts in groups.items():
        flat = torch.cat([t.reshape(-1) for t in ts])
        flat = flat.to(torch.uint8) if dtype == torch.bool else flat   # gloo has no bool collectives
        op(flat)
        for t, part in zip(ts, flat.split([t.numel() for t in ts])):
            t.copy_(part.view(t.shape))


@torch.no_grad()
def broadcast_state(modules: Sequence[nn.Module], src: int = 0) -> None:
    """Give every rank rank ``src``'s parameters and buffers of ``modules`` (what DDP does when it wraps them)."""
    if not is_distributed():
        return
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers())]
    _flat_collective(tensors, lambda flat: dist.broadcast(flat, src))


@torch.no_grad()
def average_gradients(params: Sequence[Tensor]) -> bool:
    """Average ``p.grad`` over the ranks after a backward pass; whether any parameter has a gradient.

    A step may leave parameters unused on some ranks (a view absent from a rank's whole shard, a
    branch taken by some batches only).  As in ``DistributedDataParallel(find_unused_parameters=True)``,
    a parameter used on some ranks gets g = Σ_r g_r / R with g_r = 0 where it was unused (so a
    mean loss gives a single process's gradient on the global batch when shards are equal), and a
    parameter unused on every rank keeps ``grad is None``, so the optimiser leaves it and its
    moments alone as it does in one process.  Which parameters were used is all-reduced first, so
    every rank must call this once per backward pass (also when its own loss had no gradient).
    """
    if not is_distributed():
        return any(p.grad is not None for p in params)
    if not params:
        return False
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=params[0].device)
    dist.all_reduce(used)
    live = [p for p, u in zip(params, used.tolist()) if u]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    world = dist.get_world_size()

    def mean(flat: Tensor) -> None:
        dist.all_reduce(flat)
        flat.div_(world)

    _flat_collective([p.grad for p in live if p.grad is not None], mean)   # all set above
    return bool(live)

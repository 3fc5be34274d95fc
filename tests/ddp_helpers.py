"""2-process gloo harness: a batch-statistic loss under DDP must equal one process on the whole batch.

``assert_ddp_matches_single(build, inputs)`` runs ``build()`` → ``(module, loss_fn)`` once on the
concatenated batch, then in two gloo processes, each on its contiguous shard of every input, with
the parameter gradients averaged across ranks exactly as DistributedDataParallel does.  The loss
on every rank and the averaged gradients must match the single-process run.  ``build`` must be a
module-level function (it is pickled into the spawned processes).
"""
from __future__ import annotations

import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _grads(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for k, p in module.named_parameters()}


def _worker(rank: int, world: int, port: int, build, inputs, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        module, loss_fn = build()
        shard = [x.chunk(world)[rank].clone() for x in inputs]
        loss = loss_fn(module, *shard)
        loss.backward()
        grads = _grads(module)
        for g in grads.values():                      # what DDP does with parameter gradients
            dist.all_reduce(g)
            g /= world
        torch.save({"loss": loss.detach(), "grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()                                # no rank tears down while the other still talks
    finally:
        dist.destroy_process_group()


def run_single(build, inputs):
    module, loss_fn = build()
    loss = loss_fn(module, *inputs)
    loss.backward()
    return loss.detach(), _grads(module)


def assert_ddp_matches_single(build, inputs: list[torch.Tensor], world: int = 2, atol: float = 1e-5) -> None:
    loss, grads = run_single(build, inputs)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_worker, args=(world, _free_port(), build, inputs, tmp), nprocs=world, join=True)
        results = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world)]
    for r, res in enumerate(results):
        assert torch.allclose(res["loss"], loss, atol=atol), f"rank {r}: loss {res['loss']} vs {loss}"
        for k, g in grads.items():
            assert torch.allclose(res["grads"][k], g, atol=atol), f"rank {r}: gradient of {k} differs"

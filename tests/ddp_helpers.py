"""2-process gloo harness: a batch-statistic loss under DDP must equal one process on the whole batch.

``assert_ddp_matches_single(build, inputs)`` runs ``build()`` → ``(module, loss_fn)`` once on the
concatenated batch, then in two gloo processes, each on its contiguous shard of every input, with
the parameter gradients averaged across ranks exactly as DistributedDataParallel does.  The loss
on every rank and the averaged gradients must match the single-process run.  ``build`` must be a
module-level function (it is pickled into the spawned processes).

``assert_engine_sync_matches_torch_ddp(build, inputs)`` checks the engine's own gradient
averaging (``viewsplit.distributed``) against ``torch.nn.parallel.DistributedDataParallel(
find_unused_parameters=True)`` on the same shards: equal gradients (None for a parameter no
rank used) and rank 0's weights and buffers on every rank after :func:`broadcast_state`.
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


def _exit_cleanly() -> None:
    """End a worker whose results are saved without the interpreter's teardown.

    Once in two full test-suite runs (2026-12-02; never when the test ran alone), rank 0 of an SDL test
    aborted after its work with "terminate called without an active exception" during interpreter
    teardown, and ``mp.spawn`` reported SIGABRT though both ranks' results were saved. A worker that
    fails raises before reaching this, so its error is still reported.
    """
    os._exit(0)


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
    _exit_cleanly()


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


class _Loss(torch.nn.Module):
    """``loss_fn(module, *inputs)`` as a module forward, which DistributedDataParallel needs."""

    def __init__(self, module: torch.nn.Module, loss_fn):
        super().__init__()
        self.module, self.loss_fn = module, loss_fn

    def forward(self, *inputs):
        return self.loss_fn(self.module, *inputs)


def _sync_worker(rank: int, world: int, port: int, build, inputs, out_dir: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    from viewsplit.distributed import average_gradients, broadcast_state

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        shard = [x.chunk(world)[rank].clone() for x in inputs]
        results = {}
        for how in ("torch", "engine"):
            module, loss_fn = build()
            with torch.no_grad():                      # rank-specific weights and buffers: rank 0's must win
                for t in (*module.parameters(), *module.buffers()):
                    t.add_(rank)
            if how == "torch":
                run = DistributedDataParallel(_Loss(module, loss_fn), find_unused_parameters=True)
            else:
                broadcast_state([module])
                run = _Loss(module, loss_fn)
            state = {k: v.clone() for k, v in module.state_dict().items()}
            run(*shard).backward()
            if how == "engine":
                average_gradients(list(module.parameters()))
            grads = {k: None if p.grad is None else p.grad.clone() for k, p in module.named_parameters()}
            results[how] = {"state": state, "grads": grads}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    _exit_cleanly()


def assert_engine_sync_matches_torch_ddp(build, inputs: list[torch.Tensor], world: int = 2) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_sync_worker, args=(world, _free_port(), build, inputs, tmp), nprocs=world, join=True)
        results = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world)]
    reference = results[0]["torch"]["state"]
    for r, res in enumerate(results):
        ours, theirs = res["engine"], res["torch"]
        for k, v in reference.items():
            assert torch.equal(ours["state"][k], v) and torch.equal(theirs["state"][k], v), f"rank {r}: state {k}"
        for k, g in theirs["grads"].items():
            assert (g is None) == (ours["grads"][k] is None), f"rank {r}: {k} has a gradient in only one of the two"
            assert g is None or torch.allclose(ours["grads"][k], g, atol=1e-6), f"rank {r}: gradient of {k} differs"
    return results

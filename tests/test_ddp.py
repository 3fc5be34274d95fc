"""Distributed training: 2 gloo processes launched by torchrun equal one process on the global batch."""
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import REPO

from viewsplit.config import load_config
from viewsplit.engine.run import load_run, train

RAW = {"method": "autoencoder",
       "data": {"name": "synthetic", "n_samples": 400, "view_dim": 16},
       "model": {"code_dim": 4, "backbone": {"hidden": [32], "norm": False}},
       "stages": {"train": {"epochs": 2, "batch_size": 32, "lr": 1e-2, "grad_clip": 1.0}},
       "train": {"threads": 1, "progress": "never"}}


def test_two_process_gloo_run_equals_single_process(tmp_path):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun not found")
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(RAW))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "--master_port=29517", "-m", "viewsplit", "train", str(path),
                           "--out", str(tmp_path / "ddp")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # DDP(find_unused_parameters=True) made torch's reducer warn here: the autoencoder uses every parameter
    assert "reducer" not in proc.stderr and "find_unused_parameters" not in proc.stderr, proc.stderr[-3000:]
    single = train(load_config(path), tmp_path / "single").method.state_dict()
    ddp = load_run(tmp_path / "ddp").method.state_dict()
    for k in single:
        assert torch.allclose(single[k].float(), ddp[k].float(), atol=1e-5), k
    epochs = [r for r in map(yaml.safe_load, (tmp_path / "ddp" / "log.jsonl").read_text().splitlines())
              if r["kind"] == "epoch"]
    assert len(epochs) == 2 and epochs[-1]["global_step"] == 2 * (320 // 32)


def _gathered_loss():
    """A loss on the global batch (batch-normalised cross-correlation) through the autograd-aware gather."""
    from viewsplit.distributed import gather

    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3)

    def loss_fn(module, x):
        z = gather(module(x))
        z = (z - z.mean(0)) / z.std(0)
        c = z.T @ z / z.shape[0]
        return (c - torch.eye(3)).pow(2).sum()

    return lin, loss_fn


def test_gather_gives_single_process_loss_and_gradients():
    from ddp_helpers import assert_ddp_matches_single

    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    assert_ddp_matches_single(_gathered_loss, [x])


def _partly_used():
    """Three layers: ``a`` used on every rank, ``b`` only on rank 1's shard, ``c`` on none; a BN buffer too."""
    torch.manual_seed(0)
    net = torch.nn.ModuleDict({"a": torch.nn.Linear(4, 3), "b": torch.nn.Linear(4, 3), "c": torch.nn.Linear(4, 3),
                               "bn": torch.nn.BatchNorm1d(3)})

    def loss_fn(module, x, use_b):
        out = module["bn"](module["a"](x)).pow(2).mean()
        if bool(use_b.all()):
            out = out + module["b"](x).sin().mean()
        return out

    return net, loss_fn


def test_average_gradients_equals_torch_ddp_with_unused_parameters():
    from ddp_helpers import assert_engine_sync_matches_torch_ddp

    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(2))
    use_b = torch.tensor([0] * 8 + [1] * 8)         # shard 0 never uses b, shard 1 does
    results = assert_engine_sync_matches_torch_ddp(_partly_used, [x, use_b])
    for res in results:   # the case is the one that matters: b is used on one rank only, c on none
        assert res["engine"]["grads"]["b.weight"] is not None and res["engine"]["grads"]["c.weight"] is None

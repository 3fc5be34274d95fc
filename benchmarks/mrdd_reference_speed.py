"""MRDD with the reference architecture: the reference code's execution pattern vs viewsplit's, side by side.

Both sides build the *same* network (docs/methods.md#mrdd-backbone, the EdgeFMNIST preset of
configs/edge_fmnist/mrdd-reference.yaml: ResNet encoder/decoder, 16 base channels, ch_mult
[1, 2, 4], 3 ResBlocks, latent 8×8×8, c_dim = v_dim = 10) with identical weights and the same
optimiser (AdamW; stage 1 with gradient clipping), and train it on the same batches:

* ``reference-style`` executes it the way the reference repository does: the shared encoder is
  called once per view, swish is ``x * sigmoid(x)``, tensors are NCHW, and stage 2 runs the
  frozen stage-1 model on every batch and steps one optimiser per view;
* ``viewsplit`` batches the views through the shared encoder, uses channels-last tensors and the
  fused SiLU kernel, and in stage 2 reads c from a table computed once per stage.

Each configuration runs in a fresh subprocess, so its peak memory (max RSS) is its own.  The
reference's configured stage-1 batch of 2048 does not fit in this machine's memory for either
side (the reference needs about 35 GB); samples/s is measured at ``--batch`` and the per-2048
step time is derived from it.

    python benchmarks/mrdd_reference_speed.py [--batch 256] [--steps 4] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(seed: int = 0):
    import torch

    from viewsplit.config import load_config
    from viewsplit.methods import build_method
    from viewsplit.methods.base import DataSpec

    cfg = load_config(REPO / "configs" / "edge_fmnist" / "mrdd-reference.yaml")
    torch.manual_seed(seed)
    spec = DataSpec([(1, 32, 32), (1, 32, 32)], ["image", "edge"], 10)
    return cfg, build_method("mrdd", cfg.model, spec)


def worker(side: str, stage: str, batch: int, steps: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F

    import viewsplit.models.resnet as resnet
    from viewsplit.data.multiview import MultiViewDataset
    from viewsplit.engine.trainer import make_optimizer
    from viewsplit.models.masking import mask_view

    torch.set_num_threads(threads)
    cfg, m = build()
    g = torch.Generator().manual_seed(1)
    n = batch * (steps + 1)
    views = [torch.randint(0, 256, (n, 1, 32, 32), generator=g, dtype=torch.uint8) for _ in range(2)]
    data = MultiViewDataset(views, torch.zeros(n, dtype=torch.long))
    batches = list(data.batches(batch))
    reference = side == "reference-style"
    if reference:
        # the reference's swish: two kernels and an extra activation tensor per call
        class _F:
            def __getattr__(self, name):
                return getattr(F, name)

            @staticmethod
            def silu(x):
                return x * torch.sigmoid(x)

        resnet.F = _F()
    else:
        m = m.to(memory_format=torch.channels_last)
        batches = [b.to("cpu", channels_last=True) for b in batches]
    scfg = cfg.stages[stage]
    m.train()
    if stage == "consistency":
        params = list(m.consistency.parameters())
        opt = torch.optim.AdamW(params, lr=scfg.lr, betas=scfg.betas, weight_decay=scfg.weight_decay)

        def step(b):
            if reference:
                masked = [mask_view(x, m.cfg.mask_ratio, m.cfg.patch_size) for x in b.views]
                enc = m.consistency.encoders[0]
                h = torch.cat([enc(x) for x in masked], 1)          # one encoder call per view
                mu, logvar = m.consistency.fc_z(h).chunk(2, 1)
                c = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
                recon = sum(F.mse_loss(dec(c), x, reduction="sum") for dec, x in zip(m.consistency.decoders, b.views))
                loss = recon + (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
            else:
                loss = m.consistency_loss(b)["objective"]
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, scfg.grad_clip)
            opt.step()
    else:
        st = m.stage("disentangle")
        m.consistency.eval()
        for p in m.consistency.parameters():
            p.requires_grad_(False)
        if reference:
            opts = [torch.optim.AdamW(list(m.specific[v].parameters()) + list(m.critics[v].parameters()),
                                      lr=scfg.lr, betas=scfg.betas, weight_decay=scfg.weight_decay) for v in range(2)]

            def step(b):
                with torch.no_grad():                                  # the frozen model runs on every batch
                    c = m.consistency.posterior(b.views, b.mask)[0]
                for v in range(2):                                     # one optimiser per view, stepped in turn
                    vae, critic = m.specific[v], m.critics[v]
                    mu, logvar = vae.posterior(b.views[v])
                    s = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
                    critic_loss = critic.learning_loss(s, c)
                    x_hat = vae.decoder(torch.cat([s, c], 1))
                    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
                    loss = F.mse_loss(x_hat, b.views[v], reduction="sum") + 0.5 * kl + critic(s, c)
                    opts[v].zero_grad()
                    (critic_loss + loss).backward()
                    opts[v].step()
        else:
            st.on_start(data, torch.device("cpu"))
            opts = {s.name: make_optimizer(s, scfg) for s in st.steps}

            def step(b):
                for s in st.steps:
                    opts[s.name].zero_grad()
                    s.loss(b)["objective"].backward()
                    opts[s.name].step()
    step(batches[0])                                                  # warm-up
    t = time.perf_counter()
    for b in batches[1:]:
        step(b)
    dt = time.perf_counter() - t
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"side": side, "stage": stage, "samples_per_s": steps * batch / dt, "peak_rss_gb": rss_gb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "STAGE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.batch, args.steps, args.threads)))
        return
    rows = []
    for stage in ("consistency", "disentangle"):
        for side in ("reference-style", "viewsplit"):
            out = subprocess.run([sys.executable, __file__, "--worker", side, stage, "--batch", str(args.batch),
                                  "--steps", str(args.steps), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True, cwd=REPO)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  measured {side} {stage}", file=sys.stderr)
    print(f"MRDD reference architecture (EdgeFMNIST preset), batch {args.batch}, {args.steps} timed steps, "
          f"{args.threads} threads\n")
    print("| stage | implementation | samples/s | s per 2048-sample step | peak RSS (GB) | speed-up |")
    print("|---|---|---|---|---|---|")
    for stage in ("consistency", "disentangle"):
        ref, ours = (r for r in rows if r["stage"] == stage)
        for r in (ref, ours):
            speed = r["samples_per_s"] / ref["samples_per_s"]
            print(f"| {stage} | {r['side']} | {r['samples_per_s']:.1f} | {2048 / r['samples_per_s']:.1f} | "
                  f"{r['peak_rss_gb']:.2f} | {speed:.2f}× |")


if __name__ == "__main__":
    main()

"""Where one training step of each stage spends its time, and how close its convolution and matrix work comes
to this machine's peak (issue 31, "Speed is part of quality here").

For each stage of the preset (default configs/edge_fmnist/mrdd.yaml: stage 1 ``consistency``, stage 2
``disentangle``), on the CPU with ``--threads`` threads and the stage's batch size: ``--warmup`` untimed steps,
then ``--steps`` timed ones, each run by the trainer's own ``Trainer._train_step`` on real Fashion-MNIST batches
(random uint8 images of the same shapes when the files are absent; the output says which).  Stage 2 starts from
the freshly initialised stage 1 (the time of a step does not depend on the weights).  A step is split by wall
clock (``time.perf_counter``; CPU ops run synchronously, so the clock around a call is its cost) into

* data: the next batch from ``MultiViewDataset.batches`` (gather, uint8 → float) and ``Batch.to``
  (channels-last), as the trainer's loop does.  The preset has no augmentation; MRDD's masking and view drop
  run inside the loss and count as forward;
* forward: inside each ``Step.loss`` (wrapped; stage 2 reads c from the table its start hook computes once);
* backward: ``Tensor.backward`` (patched with a timing wrapper while the timed steps run);
* optimiser: ``zero_grad``, ``clip_grad_norm_`` and ``step`` (the optimisers wrapped);
* overhead: the step's wall time minus the four, i.e. the Python between those calls (``requires_grad``
  toggles, finite checks, the logged terms, loops).  The Python *inside* them (module calls, autograd's
  dispatch) stays in their phase.  Subtraction rather than torch.profiler's self CPU time, because the
  profiler's per-op bookkeeping inflates exactly the small ops whose cost is in question.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, forward
and backward; elementwise work is not counted) on a replay of the timed steps with the same batches and RNG
seed, hence the same view drops.  Achieved GFLOP/s = FLOPs / (forward + backward time).  The peaks are measured
by this script with the same threads: the best of ``--repeats`` float32 2048×2048×2048 matmuls and of 3×3
64→64-channel convolutions of a 64×64×56×56 batch (the better of NCHW and channels-last).  ``achieved / peak``
divides by the higher peak; it is the figure issue 31 tracks.  On a shared machine the times are upper bounds.

    python benchmarks/step_profile.py [--config configs/edge_fmnist/mrdd.yaml] [--threads 2] [--steps 20]
        [--warmup 3] [--repeats 5]
"""
from __future__ import annotations

# isort: off
import viewsplit  # noqa: F401  (before torch: OpenMP threads wait passively, as in every viewsplit run)
# isort: on

import argparse
import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from viewsplit.config import RunConfig, load_config
from viewsplit.data.multiview import Batch, MultiViewDataset
from viewsplit.data.registry import DATASETS, load_dataset
from viewsplit.engine.run import build
from viewsplit.engine.trainer import Trainer, make_optimizer
from viewsplit.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
PHASES = ("data", "forward", "backward", "optimiser", "overhead")
#: view shapes of the data sets this script can replace by random images when their files are absent
SHAPES: dict[str, list[tuple[int, ...]]] = {name: [(1, 32, 32)] * 2 for name in ("edge_fmnist", "edge_mnist")}


class Clock:
    """Seconds spent per phase; ``with clock("forward"): ...`` adds the block's wall time to that phase."""

    def __init__(self) -> None:
        self.total = dict.fromkeys(PHASES, 0.0)

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.total[phase] += time.perf_counter() - t

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(phase):
                return fn(*args, **kwargs)

        return timed


def random_data(shapes: list[tuple[int, ...]], n: int, seed: int = 0) -> MultiViewDataset:
    """``n`` samples of random uint8 images of the given (C, H, W) shapes, 10 classes: a stand-in data set."""
    g = torch.Generator().manual_seed(seed)
    views = [torch.randint(0, 256, (n, *s), generator=g, dtype=torch.uint8) for s in shapes]
    return MultiViewDataset(views, torch.arange(n) % 10, [f"view{v}" for v in range(len(shapes))])


def training_data(cfg: RunConfig) -> tuple[MultiViewDataset, str]:
    """The preset's training split, or random images of its shapes when the files are absent; and which."""
    found, where = DATASETS[cfg.data.name].locate(cfg.data)
    if found:
        return load_dataset(cfg.data).train, f"real {cfg.data.name} training split ({where})"
    if cfg.data.name not in SHAPES:
        raise DataError(f"data.name: {cfg.data.name} is {where}; install it or profile edge_fmnist")
    return random_data(SHAPES[cfg.data.name], 60000), f"RANDOM images of {cfg.data.name}'s shapes ({where})"


def endless(data: MultiViewDataset, batch_size: int, drop_last: bool, seed: int) -> Iterator[Batch]:
    """The trainer's shuffled batches, epoch after epoch."""
    epoch = 0
    while True:
        yield from data.batches(batch_size, shuffle=True, seed=seed, epoch=epoch, drop_last=drop_last)
        epoch += 1


def count_flops(fn: Callable[[], Any]) -> int:
    """Convolution and matrix-product FLOPs (forward and backward) of ``fn()``, as FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def profile_stage(trainer: Trainer, name: str, steps: int, warmup: int, seed: int = 0) -> dict[str, Any]:
    """Time ``warmup`` + ``steps`` training steps of stage ``name`` (its start hook included, timed apart) and
    count the FLOPs of a replay of the timed ones; mean seconds per phase and per step, FLOPs per step."""
    cfg, method, data, device = trainer.cfg, trainer.method, trainer.data, trainer.device
    scfg, stage = cfg.stages[name], method.stage(name)
    trainer._batching(name, scfg)   # a ConfigError when the data holds no batch of this size
    owned = trainer._freeze_all_but(stage.steps)
    raw = {s.name: make_optimizer(s, scfg) for s in stage.steps}
    t = time.perf_counter()
    if stage.on_start is not None:
        stage.on_start(data, device)
    start_s = time.perf_counter() - t
    trainer._set_modes(stage)
    clock = Clock()
    timed_steps = [dataclasses.replace(s, loss=clock.wrap("forward", s.loss)) for s in stage.steps]
    timed_opts = cast("dict[str, torch.optim.Optimizer]",   # all that _train_step calls of an optimiser, timed
                      {k: SimpleNamespace(zero_grad=clock.wrap("optimiser", o.zero_grad),
                                          step=clock.wrap("optimiser", o.step)) for k, o in raw.items()})
    batches = endless(data, scfg.batch_size, scfg.drop_last, seed)
    for _ in range(warmup):
        trainer._train_step(next(batches).to(device, cfg.train.channels_last), stage.steps, raw, owned, scfg,
                            (name, 0, 0))
    torch.manual_seed(seed)
    walls: list[float] = []
    backward, clip = torch.Tensor.backward, torch.nn.utils.clip_grad_norm_
    with mock.patch.object(torch.Tensor, "backward", clock.wrap("backward", backward)), \
            mock.patch.object(torch.nn.utils, "clip_grad_norm_", clock.wrap("optimiser", clip)):
        begin = time.perf_counter()
        for b in range(steps):
            t = time.perf_counter()
            with clock("data"):
                batch = next(batches).to(device, cfg.train.channels_last)
            trainer._train_step(batch, timed_steps, timed_opts, owned, scfg, (name, 0, b))
            walls.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - begin
    replay = endless(data, scfg.batch_size, scfg.drop_last, seed)
    for _ in range(warmup):
        next(replay)
    torch.manual_seed(seed)
    flops = [count_flops(lambda: trainer._train_step(next(replay).to(device, cfg.train.channels_last), stage.steps,
                                                     raw, owned, scfg, (name, 0, 0))) for _ in range(steps)]
    phases = {k: v / steps for k, v in clock.total.items()}
    wall = sum(walls) / steps
    phases["overhead"] = wall - sum(v for k, v in phases.items() if k != "overhead")
    return {"stage": name, "batch": scfg.batch_size, "wall": wall, "phases": phases, "elapsed": elapsed,
            "flops": sum(flops) / steps, "start_s": start_s}


def best_gflops(fn: Callable[[], Any], repeats: int) -> float:
    """GFLOP/s of ``fn`` from its counted FLOPs and its fastest of ``repeats`` runs (after one warm-up)."""
    flops = count_flops(fn)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return flops / min(times) / 1e9


@torch.no_grad()
def peak_matmul(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n×n by n×n matmul."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return best_gflops(lambda: a @ b, repeats)


@torch.no_grad()
def peak_conv(batch: int = 64, channels: int = 64, size: int = 56, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of a channels→channels 3×3 convolution (padding 1), NCHW or channels-last."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    x = torch.randn(batch, channels, size, size)
    best = best_gflops(lambda: conv(x), repeats)
    conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    x = x.to(memory_format=torch.channels_last)
    return max(best, best_gflops(lambda: conv(x), repeats))


def make_trainer(cfg: RunConfig, data: MultiViewDataset, run_dir: Path) -> Trainer:
    """The preset's method (freshly initialised, as ``viewsplit train`` builds it) in a CPU trainer; nothing is
    written to ``run_dir``."""
    method = build(cfg, data)
    return Trainer(cfg, method, method.preprocess.transform(data), run_dir, device=torch.device("cpu"))


def table(rows: list[dict[str, Any]], peak_mm: float, peak_cv: float) -> str:
    """The markdown table of the profile."""
    out = ["| stage | batch | ms / step | " + " | ".join(PHASES) + " | GFLOP / step | achieved GFLOP/s (fwd+bwd) "
           "| peak matmul GFLOP/s | peak conv GFLOP/s | achieved / peak |", "|---" * (8 + len(PHASES)) + "|"]
    for r in rows:
        ph = r["phases"]
        achieved = r["flops"] / (ph["forward"] + ph["backward"]) / 1e9
        cells = [f"{1e3 * ph[k]:.1f} ({100 * ph[k] / r['wall']:.0f}%)" for k in PHASES]
        out.append(f"| {r['stage']} | {r['batch']} | {1e3 * r['wall']:.1f} | " + " | ".join(cells) +
                   f" | {r['flops'] / 1e9:.2f} | {achieved:.1f} | {peak_mm:.1f} | {peak_cv:.1f} | "
                   f"{achieved / max(peak_mm, peak_cv):.3f} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "edge_fmnist" / "mrdd.yaml")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per stage")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per stage before the timed ones")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each peak kernel (the best counts)")
    args = ap.parse_args()
    for opt, low in (("threads", 1), ("steps", 1), ("warmup", 0), ("repeats", 1)):
        if getattr(args, opt) < low:
            ap.error(f"--{opt}: must be >= {low}, got {getattr(args, opt)}")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    try:
        cfg = load_config(args.config)
        data, source = training_data(cfg)
    except (ConfigError, DataError) as err:
        ap.error(str(err))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(cfg, data, Path(tmp))
        rows = [profile_stage(trainer, name, args.steps, args.warmup, cfg.train.seed) for name in cfg.stages]
    peak_mm, peak_cv = peak_matmul(repeats=args.repeats), peak_conv(repeats=args.repeats)
    print(f"{args.config.name} ({cfg.method}), data: {source}; CPU, {args.threads} threads "
          f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), {args.warmup} warm-up + {args.steps} "
          f"timed steps per stage, torch {torch.__version__}; load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print("Stage 2 trains the specific VAEs on a freshly initialised stage 1 (step time does not depend on weights)."
          " Phases: mean ms per step (share of the step).\n")
    print(table(rows, peak_mm, peak_cv))
    for r in rows:
        if r["start_s"] > 0.01:
            print(f"\n{r['stage']}: its start hook (once per stage, not in the steps) took {r['start_s']:.1f} s")


if __name__ == "__main__":
    main()

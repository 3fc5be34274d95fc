"""The training engine: stages, ordered optimiser steps, checkpoints, resume, logging, DDP.

For every stage the method declares, the engine freezes every parameter outside the stage's
steps (and keeps those modules in eval mode), builds one optimiser per :class:`Step`, and for
each batch runs the steps in order: zero grads → loss → backward → (under DDP) gradients averaged
over the ranks → clip → optimiser step.
While a step runs, the parameters of the stage's other steps do not require gradients, so a
critic step cannot move the encoder and vice versa.

A stage runs the epochs and steps of :meth:`StageConfig.length` (``steps`` cuts the last epoch short).

Checkpoints (``checkpoints/last.pt``) are written atomically at the end of every
``train.checkpoint_every`` epochs (and every ``train.checkpoint_every_steps`` steps when set);
``resume`` restores weights, optimisers, RNG states and the position in the epoch, so a killed
run ends with the same weights as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import sys
import time
import warnings
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import __version__
from ..config import RunConfig, StageConfig
from ..data.multiview import Batch, MultiViewDataset, check_values, num_batches
from ..distributed import DistContext, average_gradients, broadcast_state, mean_across_ranks
from ..errors import ConfigError, DataError, TrainingError, TrainingWarning
from ..files import atomic_path
from ..methods.base import Method, Stage, Step
from ..threads import SlowdownWatch, default_threads
from . import checkpoint as ckpt
from .logger import ProgressLines, RunLogger, headline_terms, log
from .resume import check_resumable


def resolve_device(name: str, ctx: DistContext) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {name!r} requested but CUDA is not available")
        if name == "cuda":
            name = f"cuda:{ctx.local_rank}"
    return torch.device(name)


def lr_factor(scfg: StageConfig, epoch: int, epochs: int) -> float:
    """Learning-rate multiplier for ``epoch`` (0-based) of a stage that runs ``epochs`` epochs (as
    :meth:`StageConfig.length` resolves ``epochs`` / ``steps`` / ``min_steps``); cosine follows
    CosineAnnealingLR's closed form with ``t_max`` (None = ``epochs``)."""
    if scfg.scheduler == "cosine":
        t_max = scfg.t_max or max(epochs, 1)
        lo = scfg.eta_min / scfg.lr
        return lo + (1.0 - lo) * (1.0 + math.cos(math.pi * epoch / t_max)) / 2.0
    if scfg.scheduler == "step":
        return scfg.gamma ** (epoch // scfg.step_size)
    return 1.0


def make_optimizer(step: Step, scfg: StageConfig) -> torch.optim.Optimizer:
    groups: list[dict[str, Any]] = (step.param_groups(step.modules) if step.param_groups
                                    else [{"params": step.parameters()}])
    for g in groups:
        g.setdefault("lr_scale", 1.0)
        g["lr"] = scfg.lr * g["lr_scale"]
        g.setdefault("weight_decay", scfg.weight_decay)
    if scfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=scfg.lr, betas=scfg.betas)
    if scfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=scfg.lr, betas=scfg.betas)
    return torch.optim.SGD(groups, lr=scfg.lr, momentum=scfg.momentum)


def load_optimizer(opt: torch.optim.Optimizer, saved: dict) -> None:
    """Restore an optimiser's moments and step counts, keeping the settings (lr, betas, weight decay, …) it was
    built with from the current config: equal to the saved ones unless a resume allowed them to change."""
    settings = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    opt.load_state_dict(saved)
    for group, own in zip(opt.param_groups, settings):
        group.update(own)


class Trainer:
    def __init__(self, cfg: RunConfig, method: Method, data: MultiViewDataset, run_dir: str | Path,
                 ctx: DistContext | None = None, device: torch.device | None = None):
        self.cfg, self.method, self.data = cfg, method, data
        self.run_dir = Path(run_dir)
        self.ctx = ctx or DistContext()
        self.device = device or resolve_device(cfg.train.device, self.ctx)
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        self.final_path = self.run_dir / "checkpoints" / "final.pt"
        self.train_seconds = 0.0
        self.logger: RunLogger | None = None
        self.watch = SlowdownWatch(torch.get_num_threads())   # fit() sets the run's count
        self.method.to(self.device)
        if cfg.train.channels_last:
            self.method.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it

    # ------------------------------------------------------------------ public
    def fit(self, resume: bool = False, allow_changed: Sequence[str] = (), config_file: Path | None = None) -> float:
        """Train every stage (continuing from ``last.pt`` when ``resume``); return training seconds.

        ``allow_changed``: config keys (``stages.*`` or ``train.*``, ``fnmatch`` wildcards) that may differ
        from the saved run when resuming, e.g. ``stages.consistency.lr`` or ``train.threads``.
        ``config_file``: where the run's config is written (atomically) once every check has passed: a refused
        resume or batch size writes nothing.  A checkpoint that cannot be written stops training with a
        :class:`TrainingError` naming the file and the cause; the last good checkpoint is kept for ``resume``.
        """
        tcfg = self.cfg.train
        if tcfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        state = ckpt.load(self.ckpt_path) if resume and self.ckpt_path.exists() else None
        # an explicit count wins; a resumed run keeps the count it trained with (its sums stay the same)
        self.watch = SlowdownWatch(tcfg.threads or (state or {}).get("threads")
                                   or default_threads(self.data.view_shapes))
        torch.set_num_threads(self.watch.threads)
        if state is not None:
            check_resumable(state, self.cfg, allow_changed, self.ckpt_path)
        for name, scfg in self.cfg.stages.items():   # every stage's batching, before the first one trains
            self._batching(name, scfg)
        if self.ctx.is_main:   # every check has passed: now the run folder may be written
            ckpt.remove_orphans(self.ckpt_path.parent)
            if config_file is not None and not (state is not None and state.get("done")):
                with atomic_path(config_file) as tmp:
                    self.cfg.save(tmp)
        if state is not None:
            self.method.load_state_dict(state["model"])
            self.train_seconds = state["train_seconds"]
            if state.get("done"):
                if self.ctx.is_main and not self.final_path.exists():   # a write of final.pt failed before
                    self._write(self.final_state(), self.final_path)
                log.info(f"{self.run_dir}: training had finished; nothing to train")
                return self.train_seconds
        else:
            ckpt.seed_everything(tcfg.seed + self.ctx.rank)
        self.logger = RunLogger(self.run_dir, enabled=self.ctx.is_main, tensorboard=tcfg.tensorboard)
        try:
            for si, (name, scfg) in enumerate(self.cfg.stages.items()):
                if state is not None and si < state["stage_index"]:
                    continue
                resume_state = state if state is not None and si == state["stage_index"] else None
                self._run_stage(si, name, scfg, resume_state)
                state = None
            if self.ctx.is_main:   # final.pt first: a last.pt marked done promises it
                self._write(self.final_state(), self.final_path)
            self._save(len(self.cfg.stages), 0, 0, {}, done=True)
        finally:
            self.logger.close()
            if self.ctx.is_main:
                ckpt.remove_orphans(self.ckpt_path.parent)
        return self.train_seconds

    def run_stage(self, name: str) -> float:
        """Train the single stage ``name`` from its start, with the model as it is now (no resume).

        For experiments that compare variants of a later stage from one shared earlier stage.
        Returns the seconds it took.
        """
        if getattr(self, "logger", None) is None:
            self.logger = RunLogger(self.run_dir, enabled=self.ctx.is_main, tensorboard=False)
        t = time.perf_counter()
        self._run_stage(list(self.cfg.stages).index(name), name, self.cfg.stages[name], None)
        return time.perf_counter() - t

    def final_state(self) -> dict:
        return ckpt.model_state(self.cfg, self.method)

    # ------------------------------------------------------------------ stages
    def _run_stage(self, si: int, name: str, scfg: StageConfig, state: dict | None) -> None:
        assert self.logger is not None   # fit() and run_stage() open it first
        stage = self.method.stage(name)
        steps = stage.steps
        owned = self._freeze_all_but(steps)
        optimizers = {s.name: make_optimizer(s, scfg) for s in steps}
        broadcast_state([m for s in steps for m in s.modules])   # every rank starts from rank 0's weights
        start_epoch, start_batch = 0, 0
        if state is not None:
            if state["optimizers"]:  # empty when the checkpoint marks the start of this stage
                for s in steps:
                    load_optimizer(optimizers[s.name], state["optimizers"][s.name])
            ckpt.set_rng_state(state["rng"])
            start_epoch, start_batch = state["epoch"], state["batch"]
        per_rank, n_batches = self._batching(name, scfg)
        epochs, total = scfg.length(n_batches)
        if start_epoch == 0 and start_batch == 0:
            self.logger.log({"kind": "stage", "stage": name, "epochs": epochs, "steps": total,
                             "batches_per_epoch": n_batches})
        tcfg = self.cfg.train
        if stage.on_start is not None and start_epoch < epochs:
            stage.on_start(self.data, self.device)
        lines = ProgressLines(name, epochs, n_batches, total, tcfg.progress_every) if self._plain_progress() else None
        self.watch.restart(new_phase=True)
        for epoch in range(start_epoch, epochs):
            for opt in optimizers.values():
                for g in opt.param_groups:
                    g["lr"] = scfg.lr * g["lr_scale"] * lr_factor(scfg, epoch, epochs)
            self._set_modes(stage)
            sums: dict[str, float] = {}
            count = 0
            t0 = time.perf_counter()
            stop = min(n_batches, total - epoch * n_batches)   # the last epoch of a ``steps`` stage is cut short
            bar = self._progress(stop, start_batch, f"{name} {epoch + 1}/{epochs}")
            for b, batch in enumerate(self._epoch_batches(per_rank, scfg, epoch, start_batch, stop), start=start_batch):
                terms = self._train_step(batch.to(self.device, tcfg.channels_last), steps, optimizers, owned, scfg,
                                         (name, epoch, b))
                self.watch.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                gstep = int(self.method.global_step)
                if gstep % tcfg.log_every == 0:
                    self.logger.log({"kind": "step", "stage": name, "epoch": epoch, "batch": b, "global_step": gstep,
                                     "lr": optimizers[steps[-1].name].param_groups[0]["lr"], **terms})
                if lines is not None:
                    lines.update(epoch, b, terms)
                if bar is not None:
                    bar.update(1)
                    if b % 10 == 0:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in headline_terms(terms, 4)}, refresh=False)
                if tcfg.checkpoint_every_steps and (b + 1) % tcfg.checkpoint_every_steps == 0 and b + 1 < stop:
                    self.train_seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    self._save(si, epoch, b + 1, optimizers)
            if bar is not None:
                bar.close()
            start_batch = 0
            if stage.on_epoch_end is not None:
                stage.on_epoch_end(epoch)
            self.train_seconds += time.perf_counter() - t0
            means = mean_across_ranks({k: v / max(count, 1) for k, v in sums.items()})
            problems = stage.check_epoch(means) if stage.check_epoch is not None else []
            self.logger.log({"kind": "epoch", "stage": name, "epoch": epoch,
                             "global_step": int(self.method.global_step),
                             "lr": optimizers[steps[-1].name].param_groups[0]["lr"], **means,
                             "train_seconds": round(self.train_seconds, 3),
                             **({"warnings": problems} if problems else {})})
            for msg in problems if self.ctx.is_main else []:
                warnings.warn(f"stage {name!r}, epoch {epoch + 1}: {msg}", TrainingWarning, stacklevel=2)
            if (epoch + 1) % tcfg.checkpoint_every == 0 and epoch + 1 < epochs:
                self._save(si, epoch + 1, 0, optimizers)
        if stage.on_end is not None:
            stage.on_end(self.data, self.device)
        self._save(si + 1, 0, 0, {})  # the stage is complete

    def _epoch_batches(self, per_rank: int, scfg: StageConfig, epoch: int, start: int,
                       stop: int) -> Generator[Batch, None, None]:
        """This rank's batches ``start`` … ``stop − 1`` of ``epoch``; the data's iterator (and its prefetch
        thread, if any) is closed when the epoch ends early."""
        batches = self.data.batches(per_rank, shuffle=True, seed=self.cfg.train.seed, epoch=epoch,
                                    drop_last=scfg.drop_last, rank=self.ctx.rank, world_size=self.ctx.world_size,
                                    start=start)
        try:
            yield from itertools.islice(batches, max(stop - start, 0))
        finally:
            close = getattr(batches, "close", None)   # a generator, or the on-disk prefetching iterator
            if close is not None:
                close()

    def _batching(self, name: str, scfg: StageConfig) -> tuple[int, int]:
        """Stage ``name``'s per-rank batch size and batches per epoch; a ConfigError if it has no batch."""
        world = self.ctx.world_size
        if scfg.batch_size < world:
            raise ConfigError(f"stages.{name}.batch_size: {scfg.batch_size} is smaller than the {world} DDP ranks")
        n_batches = num_batches(-(-len(self.data) // world), scfg.batch_size // world, scfg.drop_last)
        if n_batches == 0:
            raise ConfigError(f"stages.{name}.batch_size: {scfg.batch_size} exceeds the {len(self.data)} training "
                              "samples with drop_last=true; lower it or set drop_last=false")
        return scfg.batch_size // world, n_batches

    def _train_step(self, batch: Batch, steps: list[Step], optimizers: dict[str, torch.optim.Optimizer],
                    owned: dict[str, list[nn.Parameter]], scfg: StageConfig,
                    where: tuple[str, int, int]) -> dict[str, float]:
        """One training step: each optimiser step in order, its gradients averaged over DDP ranks."""
        terms: dict[str, float] = {}
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                    if self.cfg.train.precision == "bf16" else contextlib.nullcontext())
        for step in steps:
            params = owned[step.name]
            for other in steps:
                for p in owned[other.name]:
                    p.requires_grad_(other is step)
            for _ in range(step.repeats):
                opt = optimizers[step.name]
                opt.zero_grad(set_to_none=True)
                with autocast:
                    out = step.loss(batch)
                self._check_finite(out, step, where, batch)
                if out["objective"].requires_grad:   # not when e.g. every view of this batch was missing
                    out["objective"].backward()
                if not average_gradients(params):    # no parameter has a gradient on any rank
                    continue
                if scfg.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, scfg.grad_clip)
                opt.step()
            prefix = f"{step.name}/" if len(steps) > 1 else ""
            terms.update({prefix + k: float(v.detach()) for k, v in out.items()})
        for other in steps:
            for p in owned[other.name]:
                p.requires_grad_(True)
        self.method.global_step += 1
        return terms

    def _check_finite(self, out: dict[str, Tensor], step: Step, where: tuple[str, int, int], batch: Batch) -> None:
        """Stop on a non-finite loss, naming the component term (not the total) and, when an input view of the
        batch holds NaN, Inf or huge values, that view."""
        if "objective" not in out:
            raise TypeError(f"the {step.name!r} step's loss must return a dict with an 'objective' entry")
        bad = [k for k, v in out.items() if not torch.isfinite(v.detach()).all()]
        if not bad:
            return
        k = next((t for t in bad if t != "objective"), bad[0])
        stage, epoch, b = where
        hint = self._input_fault(batch) or (
            "Try a lower learning rate, gradient clipping (grad_clip) or fp32; to continue from the last checkpoint "
            f"with a changed setting, resume with it and --allow-changed, e.g. `viewsplit train CONFIG --out "
            f"{self.run_dir} --resume stages.{stage}.lr=… --allow-changed stages.{stage}.lr`.")
        msg = (f"non-finite loss term {k!r} ({float(out[k].detach().float().mean())}) in step {step.name!r} of stage "
               f"{stage!r}, epoch {epoch + 1}, batch {b}; training stopped. The last good checkpoint is "
               f"{self.ckpt_path if self.ckpt_path.exists() else '(none yet)'}. {hint}")
        assert self.logger is not None   # fit() and run_stage() open it first
        self.logger.log({"kind": "error", "stage": stage, "epoch": epoch, "batch": b, "term": k, "message": msg})
        raise TrainingError(msg)

    def _input_fault(self, batch: Batch) -> str | None:
        """Why the batch's present inputs are unusable (NaN, Inf, huge values), naming the view; None if they
        are fine."""
        for v, x in enumerate(batch.views):
            try:
                check_values(x.detach(), f"input view {v} ({list(self.data.view_names or [])[v]!r}) of this batch",
                             batch.mask[:, v])
            except DataError as err:
                return f"The data is at fault, not the learning rate: {err}."
        return None

    # ------------------------------------------------------------------ helpers
    def _freeze_all_but(self, steps: list[Step]) -> dict[str, list[nn.Parameter]]:
        for p in self.method.parameters():
            p.requires_grad_(False)
        owned: dict[str, list[nn.Parameter]] = {}
        seen: dict[int, str] = {}
        for s in steps:
            params = s.parameters()
            for p in params:
                if id(p) in seen:
                    raise TypeError(f"a parameter is trained by both step {seen[id(p)]!r} and step {s.name!r}")
                seen[id(p)] = s.name
                p.requires_grad_(True)
            owned[s.name] = params
        return owned

    def _set_modes(self, stage: Stage) -> None:
        """Everything in eval mode except the modules the stage trains."""
        self.method.eval()
        for s in stage.steps:
            for m in s.modules:
                m.train()
        for m in stage.train_modules:
            m.train()

    def _progress(self, total: int, start: int, desc: str) -> Any:
        """A tqdm bar (``train.progress`` ``always``, or ``auto`` on a terminal) on the main process, else None."""
        mode = self.cfg.train.progress
        if not self.ctx.is_main or mode in ("never", "lines") or (mode == "auto" and not sys.stderr.isatty()):
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=start, desc=desc, leave=False, dynamic_ncols=True)

    def _plain_progress(self) -> bool:
        """Whether the main process logs plain progress lines (``lines``, or ``auto`` without a terminal)."""
        mode = self.cfg.train.progress
        return self.ctx.is_main and (mode == "lines" or (mode == "auto" and not sys.stderr.isatty()))

    def _save(self, stage_index: int, epoch: int, batch: int, optimizers: dict, done: bool = False) -> None:
        if not self.ctx.is_main:
            return
        state = {
            "format": ckpt.FORMAT, "viewsplit": __version__, "config": self.cfg.to_dict(),
            "spec": self.method.spec.to_dict(), "model": self.method.state_dict(), "stage_index": stage_index,
            "epoch": epoch, "batch": batch, "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "rng": ckpt.rng_state(), "train_seconds": self.train_seconds, "done": done,
            "threads": torch.get_num_threads(),
        }
        self._write(state, self.ckpt_path)
        self.watch.restart()   # a checkpoint's write is no step's time

    def _write(self, state: dict, path: Path) -> None:
        """Save a checkpoint atomically; when the write fails (disk full, file-size limit, permissions), stop
        with a one-line :class:`TrainingError` naming the file and the cause, keeping the last good checkpoint."""
        try:
            ckpt.atomic_save(state, path)
        except OSError as err:
            kept = (f"the last good checkpoint {self.ckpt_path} is kept" if self.ckpt_path.exists()
                    else "no checkpoint had been written yet")
            msg = (f"cannot write checkpoint {path}: {err.strerror or err}; training stopped and {kept}. Free space "
                   f"(or fix the folder's permissions), then continue with `viewsplit train CONFIG --out "
                   f"{self.run_dir} --resume`")
            if self.logger is not None:
                with contextlib.suppress(OSError):   # the log may sit on the same full disk
                    self.logger.log({"kind": "error", "message": msg})
            raise TrainingError(msg) from None

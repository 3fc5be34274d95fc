"""The training engine: stages, step order, freezing, schedules, NaN stop, checkpoints and resume."""
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
import yaml
from conftest import REPO
from helpers import train_killed_at
from torch import nn

from viewsplit.config import StageConfig, load_config
from viewsplit.engine import checkpoint as ckpt
from viewsplit.engine.run import load_run, prepare, train
from viewsplit.engine.trainer import Trainer, lr_factor
from viewsplit.errors import ConfigError, TrainingError
from viewsplit.methods.base import Method, Stage, Step, register_method


@dataclass
class ToyConfig:
    nan_at_step: int = -1


@register_method
class Toy(Method):
    """Two stages; the second trains a critic then a head on top of the frozen first-stage encoder."""

    name = "toy"
    Config = ToyConfig
    stage_defaults: ClassVar[dict[str, dict]] = {"first": {"epochs": 2, "batch_size": 8},
                                                 "second": {"epochs": 2, "batch_size": 8}}

    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        d = spec.view_shapes[0][0]
        self.enc = nn.Sequential(nn.Linear(d, 4), nn.BatchNorm1d(4))
        self.critic = nn.Linear(4, 1)
        self.head = nn.Linear(4, d)
        self.calls = []

    def _first(self, batch):
        z = self.enc(batch.views[0])
        loss = (z - batch.views[1][:, :4]).pow(2).mean()
        if int(self.global_step) == self.cfg.nan_at_step:
            return {"objective": loss, "bad_term": loss * float("nan")}
        return {"objective": loss}

    def _critic(self, batch):
        self.calls.append(("critic", self.enc.training, self.critic.training))
        z = self.enc(batch.views[0])
        return {"objective": self.critic(z).pow(2).mean()}

    def _head(self, batch):
        self.calls.append(("head", self.enc.training, self.head.training))
        z = self.enc(batch.views[0])
        return {"objective": (self.head(z) - batch.views[0]).pow(2).mean() + self.critic(z).mean()}

    def stage(self, name):
        if name == "first":
            return Stage(name, [Step("model", [self.enc], self._first)])
        return Stage(name, [Step("critic", [self.critic], self._critic, repeats=2),
                            Step("head", [self.head], self._head)])

    def encode(self, views, mask=None):
        return {"C": self.enc(views[0])}


def toy_cfg(**over):
    raw = {"method": "toy", "data": {"name": "synthetic", "n_samples": 40, "n_views": 2, "view_dim": 6},
           "train": {"progress": "never"}}
    return load_config(base=raw, overrides=[f"{k}={v}" for k, v in over.items()])


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_stages_freeze_order_and_modes(tmp_path):
    cfg = toy_cfg(**{"stages.first.epochs": 1})
    run = prepare(cfg, tmp_path)
    trainer = Trainer(cfg, run.method, run.splits.train, tmp_path)
    m = run.method
    # run stage 1 alone, then check what stage 2 may and may not change
    trainer.run_stage("first")
    enc0, critic0, head0 = snapshot(m.enc), snapshot(m.critic), snapshot(m.head)
    trainer.run_stage("second")
    assert all(torch.equal(enc0[k], v) for k, v in m.enc.state_dict().items())   # weights and BN buffers
    assert any(not torch.equal(critic0[k], v) for k, v in m.critic.state_dict().items())
    assert any(not torch.equal(head0[k], v) for k, v in m.head.state_dict().items())
    steps_per_epoch = 32 // 8
    assert [c[0] for c in m.calls[:6]] == ["critic", "critic", "head"] * 2
    assert len(m.calls) == 3 * steps_per_epoch * 2
    assert all(enc_training is False and own_training for _, enc_training, own_training in m.calls)


def test_critic_step_cannot_move_head_and_head_step_cannot_move_critic(tmp_path):
    cfg = toy_cfg()
    run = prepare(cfg, tmp_path)
    m = run.method
    trainer = Trainer(cfg, m, run.splits.train, tmp_path)
    stage = m.stage("second")
    owned = trainer._freeze_all_but(stage.steps)
    from viewsplit.engine.trainer import make_optimizer

    opts = {s.name: make_optimizer(s, cfg.stages["second"]) for s in stage.steps}
    batch = next(run.splits.train.batches(8))
    # only the critic step
    head0, critic0 = snapshot(m.head), snapshot(m.critic)
    trainer._train_step(batch, stage.steps[:1], opts, owned, cfg.stages["second"], ("second", 0, 0))
    assert all(torch.equal(head0[k], v) for k, v in m.head.state_dict().items())
    assert any(not torch.equal(critic0[k], v) for k, v in m.critic.state_dict().items())
    # only the head step (its loss goes through the critic, which must not move)
    critic1 = snapshot(m.critic)
    trainer._train_step(batch, stage.steps[1:], opts, owned, cfg.stages["second"], ("second", 0, 0))
    assert all(torch.equal(critic1[k], v) for k, v in m.critic.state_dict().items())


def test_cosine_schedule_matches_reference_table():
    s = StageConfig(epochs=200, lr=5e-4, scheduler="cosine", t_max=20, eta_min=5e-7)
    table = {0: 5.0e-4, 5: 4.268499e-4, 10: 2.502500e-4, 15: 7.365008e-5, 20: 5.0e-7, 30: 2.5025e-4,
             40: 5.0e-4, 100: 5.0e-7, 199: 4.969252e-4}
    for epoch, lr in table.items():
        assert s.lr * lr_factor(s, epoch, 200) == pytest.approx(lr, rel=1e-6)
    # and PyTorch's own scheduler agrees
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=5e-7)
    for epoch in range(45):
        assert opt.param_groups[0]["lr"] == pytest.approx(s.lr * lr_factor(s, epoch, 200), rel=1e-6)
        opt.step()
        sched.step()
    step = StageConfig(lr=1.0, scheduler="step", step_size=3, gamma=0.5)
    assert [lr_factor(step, e, 10) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]


def test_nan_loss_stops_and_names_the_term(tmp_path):
    cfg = toy_cfg(**{"model.nan_at_step": 6})   # 4 steps per epoch: dies in epoch 2
    with pytest.raises(TrainingError, match=r"non-finite loss term 'bad_term'.*stage 'first', epoch 2"):
        train(cfg, tmp_path / "run")
    state = ckpt.load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert (state["stage_index"], state["epoch"]) == (0, 1)   # the last good checkpoint survives
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp*"))
    rows = [yaml.safe_load(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["kind"] == "error" and rows[-1]["term"] == "bad_term"


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, monkeypatch):
    over = {"stages.first.epochs": 3, "stages.second.epochs": 3, "train.checkpoint_every_steps": 3}
    full = train(toy_cfg(**over), tmp_path / "full").method.state_dict()
    # interrupt in the middle of stage 2, after a mid-epoch checkpoint
    train_killed_at(monkeypatch, train, toy_cfg(**over), tmp_path / "cut", 12 + 5)
    state = ckpt.load(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (state["stage_index"], state["epoch"], state["batch"]) == (1, 1, 0)
    resumed = train(toy_cfg(**over), tmp_path / "cut", resume=True).method.state_dict()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    # a finished run resumes to itself; a different config refuses to resume
    train(toy_cfg(**over), tmp_path / "cut", resume=True)
    with pytest.raises(ConfigError, match=r"config differs from the saved run in stages.first.lr"):
        train(toy_cfg(**over, **{"stages.first.lr": 0.5}), tmp_path / "cut", resume=True)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        train(toy_cfg(**over), tmp_path / "cut")


def _rows(run_dir):
    return [yaml.safe_load(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_training_length_in_steps_or_raised_by_min_steps(tmp_path, caplog):
    """32 training samples in batches of 8 = 4 steps per epoch.  ``steps: 10`` runs epochs of 4, 4 and 2 steps
    (cosine over the 3 epochs run); ``epochs: 1, min_steps: 6`` runs 2 whole epochs; the ETA counts the cut."""
    over = {"stages.first.steps": 10, "stages.first.scheduler": "cosine", "stages.first.lr": 0.1,
            "stages.second.epochs": 1, "stages.second.min_steps": 6, "train.progress": "lines",
            "train.progress_every": 0}
    with caplog.at_level("INFO", logger="viewsplit"):
        run = train(toy_cfg(**over), tmp_path / "r")
    assert int(run.method.global_step) == 10 + 8
    rows = _rows(tmp_path / "r")
    plan = {r["stage"]: (r["epochs"], r["steps"], r["batches_per_epoch"]) for r in rows if r["kind"] == "stage"}
    assert plan == {"first": (3, 10, 4), "second": (2, 8, 4)}
    first = [r for r in rows if r["kind"] == "epoch" and r["stage"] == "first"]
    assert [r["global_step"] for r in first] == [4, 8, 10]
    assert [r["lr"] for r in first] == pytest.approx([0.1, 0.075, 0.025])   # t_max = the 3 epochs run
    assert [r["global_step"] for r in rows if r["kind"] == "epoch" and r["stage"] == "second"] == [14, 18]
    assert "first: epoch 3/3, step 2/2" in caplog.text and "first: epoch 3/3, step 3/" not in caplog.text
    assert "second: epoch 2/2, step 4/4" in caplog.text
    assert all("stage ETA 0s" in m for m in caplog.messages if "epoch 3/3, step 2/2" in m)
    # on twice the data (8 steps per epoch) the same settings give 10 steps in 2 epochs and 1 epoch of 8 steps
    big = train(toy_cfg(**over, **{"data.n_samples": 80}), tmp_path / "big")
    assert int(big.method.global_step) == 10 + 8
    plan = {r["stage"]: (r["epochs"], r["steps"]) for r in _rows(tmp_path / "big") if r["kind"] == "stage"}
    assert plan == {"first": (2, 10), "second": (1, 8)}


def test_resume_inside_a_cut_short_epoch_equals_uninterrupted_run(tmp_path, monkeypatch):
    over = {"stages.first.steps": 10, "stages.first.scheduler": "cosine", "stages.second.steps": 6,
            "train.checkpoint_every_steps": 1}
    full = train(toy_cfg(**over), tmp_path / "full").method.state_dict()
    # die on the second step of the first stage's cut-short last epoch
    train_killed_at(monkeypatch, train, toy_cfg(**over), tmp_path / "cut", 10)
    state = ckpt.load(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert (state["stage_index"], state["epoch"], state["batch"]) == (0, 2, 1)
    resumed = train(toy_cfg(**over), tmp_path / "cut", resume=True)
    assert int(resumed.method.global_step) == 16
    assert all(torch.equal(full[k], v) for k, v in resumed.method.state_dict().items())


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "viewsplit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    """A real kill -9 of `viewsplit train`, then `--resume`: the final weights match an uninterrupted run."""
    raw = {"method": "autoencoder",
           "data": {"name": "synthetic", "n_samples": 3000, "view_dim": 64},
           "model": {"code_dim": 8, "backbone": {"hidden": [256, 256]}},
           "stages": {"train": {"epochs": 4, "batch_size": 16}},
           "train": {"threads": 1, "checkpoint_every_steps": 20, "progress": "never"}}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    ref = _cli("train", str(path), "--out", str(tmp_path / "ref"))
    cut = _cli("train", str(path), "--out", str(tmp_path / "cut"))
    last = tmp_path / "cut" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and cut.poll() is None:
        if last.exists() and ckpt.load(last)["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert cut.poll() is None, "the run finished before it could be killed"
    cut.send_signal(signal.SIGKILL)
    cut.wait()
    state = ckpt.load(last)
    assert not state["done"] and state["stage_index"] == 0
    resumed = _cli("train", str(path), "--out", str(tmp_path / "cut"), "--resume")
    assert resumed.wait() == 0, resumed.stderr.read()
    assert ref.wait() == 0, ref.stderr.read()
    a = load_run(tmp_path / "ref").method.state_dict()
    b = load_run(tmp_path / "cut").method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_atomic_save_leaves_no_partial_file(tmp_path):
    head = {"format": ckpt.FORMAT, "config": {}, "spec": {}}
    ckpt.atomic_save({**head, "model": torch.ones(3)}, tmp_path / "a.pt")
    ckpt.atomic_save({**head, "model": torch.zeros(3)}, tmp_path / "a.pt")
    assert torch.equal(ckpt.load(tmp_path / "a.pt")["model"], torch.zeros(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]

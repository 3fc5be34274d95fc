"""MIB: docs/methods.md#mib test vectors, the one-step optimiser, β resume, DDP equivalence, missing views, learning."""
import json
import math

import pytest
import torch
from conftest import REPO
from helpers import train_killed_at
from torch.distributions import Independent, Normal

from viewsplit.config import load_config
from viewsplit.engine import checkpoint as ckpt
from viewsplit.engine.run import prepare, train
from viewsplit.engine.trainer import Trainer, make_optimizer
from viewsplit.errors import ConfigError
from viewsplit.losses import (
    ExponentialScheduler,
    MIBCritic,
    gaussian_posterior,
    input_neighbour_contrast,
    mi_jsd_surrogate,
    mi_nwj_estimate,
    rolled_negatives,
    symmetric_kl,
)
from viewsplit.losses.mib import diag_gaussian_log_prob, mib_loss, posterior_params, previous_present
from viewsplit.methods.base import DataSpec
from viewsplit.methods.mib import MIB, MIBConfig
from viewsplit.models.backbones import BackboneConfig


# ---------------------------------------------------------------------------- critic estimates
def test_critic_estimate_vectors():
    zero = torch.zeros(8)
    assert mi_jsd_surrogate(zero, zero).item() == pytest.approx(-2 * math.log(2), abs=1e-6)       # −1.3862944
    assert mi_nwj_estimate(zero, zero).item() == pytest.approx(0.0, abs=1e-7)
    pos, neg = torch.full((8,), 2.0), torch.full((8,), -2.0)
    assert mi_jsd_surrogate(pos, neg).item() == pytest.approx(-0.2538560, abs=1e-6)
    assert mi_nwj_estimate(pos, neg).item() == pytest.approx(2.8646647, abs=1e-6)
    # masked means ignore the masked entries whatever their value
    mask = torch.tensor([True, True, False])
    assert mi_jsd_surrogate(torch.tensor([0.0, 0.0, 50.0]), torch.tensor([0.0, 0.0, 90.0]), mask, mask).item() == \
        pytest.approx(-2 * math.log(2), abs=1e-6)


def test_critic_zero_gives_both_vectors_through_mib_loss():
    critic = MIBCritic(3, [4])
    for p in critic.parameters():
        torch.nn.init.zeros_(p)
    z = torch.randn(2, 5, 3)
    out = mib_loss(z, torch.ones_like(z), z, torch.ones(5, 2, dtype=torch.bool), critic, beta=0.0)
    assert out["mi_jsd_surrogate"].item() == pytest.approx(-1.3862944, abs=1e-6)
    assert out["mi_nwj_estimate"].item() == pytest.approx(0.0, abs=1e-6)


def test_roll_pairing():
    a, b, c = torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([3.0])
    z1 = torch.stack([a, b, c])
    assert torch.equal(rolled_negatives(z1), torch.stack([c, a, b]))      # negatives (c, z2_0), (a, z2_1), (b, z2_2)
    critic = MIBCritic(1, [5])
    z2 = torch.tensor([[10.0], [20.0], [30.0]])
    pos, neg = critic.scores(z1, z2)
    expected = torch.stack([critic(c[None], z2[:1]), critic(a[None], z2[1:2]), critic(b[None], z2[2:])]).flatten()
    assert torch.allclose(neg, expected) and torch.allclose(pos, critic(z1, z2))
    # the same pairing inside mib_loss, and among the present samples only when some are missing
    assert previous_present(torch.ones(3, dtype=torch.bool)).tolist() == [2, 0, 1]
    assert previous_present(torch.tensor([True, False, True, True, False])).tolist() == [3, 0, 0, 2, 3]


def test_all_pairs_negatives():
    critic = MIBCritic(2, [4])
    z1, z2 = torch.randn(4, 2), torch.randn(4, 2)
    pos, neg = critic.scores(z1, z2, "all")
    assert pos.shape == (4,) and neg.shape == (12,)
    assert torch.allclose(neg[0], critic(z1[:1], z2[1:2])[0])                         # (z1_0, z2_1) comes first
    with pytest.raises(ValueError):
        critic.scores(z1, z2, "some")


# ---------------------------------------------------------------------------- posteriors and SKL
def test_sigma_positive_and_log_prob_shape():
    out = torch.cat([torch.randn(5, 64), torch.full((5, 64), -1e4)], 1)
    p = gaussian_posterior(out)
    assert (p.stddev > 0).all() and p.stddev.min().item() == pytest.approx(1e-7)
    z = p.rsample()
    assert p.log_prob(z).shape == (5,) and p.event_shape == (64,)
    out = torch.randn(5, 128)
    mu, sigma = posterior_params(out)
    assert torch.allclose(diag_gaussian_log_prob(z, mu, sigma), gaussian_posterior(out).log_prob(z), atol=1e-3)
    assert torch.allclose(sigma, torch.nn.functional.softplus(out[:, 64:]) + 1e-7)


def test_skl_vectors():
    mu, sigma = torch.randn(6, 4), torch.rand(6, 4) + 0.1
    z1, z2 = torch.randn(6, 4), torch.randn(6, 4)
    assert torch.equal(symmetric_kl(mu, sigma, mu, sigma, z1, z2), torch.zeros(6))                  # p1 ≡ p2
    one, zero = torch.ones(1, 1), torch.zeros(1, 1)
    assert symmetric_kl(zero, one, one, one, zero, one).item() == pytest.approx(0.5)
    # E[SKL(N(0, I_d), N(1, I_d))] = d/2, with a non-zero variance
    g = torch.Generator().manual_seed(0)
    d, n = 8, 200_000
    mu1, mu2, s = torch.zeros(n, d), torch.ones(n, d), torch.ones(n, d)
    skl = symmetric_kl(mu1, s, mu2, s, mu1 + torch.randn(n, d, generator=g), mu2 + torch.randn(n, d, generator=g))
    assert skl.mean().item() == pytest.approx(d / 2, abs=0.03) and skl.std().item() > 1.0
    # the distribution-based form agrees
    p1, p2 = Independent(Normal(zero, one), 1), Independent(Normal(one, one), 1)
    ref = 0.5 * ((p1.log_prob(zero) - p2.log_prob(zero)) + (p2.log_prob(one) - p1.log_prob(one)))
    assert ref.item() == pytest.approx(0.5)


# ---------------------------------------------------------------------------- β schedule
@pytest.mark.parametrize("t, beta", [(0, 0.001), (50_000, 0.001), (75_000, 0.005623), (100_000, 0.031623),
                                     (125_000, 0.177828), (150_000, 1.0), (400_000, 1.0)])
def test_beta_table(t, beta):
    assert ExponentialScheduler(1e-3, 1.0, 100_000, 50_000, 10)(t) == pytest.approx(beta, rel=1e-4)


def test_beta_zero_is_mvinfomax_and_bad_ramps_raise():
    assert ExponentialScheduler(0.0, 0.0)(10**6) == 0.0
    with pytest.raises(ValueError):
        ExponentialScheduler(0.0, 1.0)
    with pytest.raises(ConfigError, match="beta_start/beta_end"):
        load_config(base={"method": "mib", "model": {"beta_start": 0.0}})
    cfg = load_config(REPO / "configs" / "handwritten" / "mvinfomax.yaml")
    assert cfg.method == "mib" and (cfg.model.beta_start, cfg.model.beta_end) == (0.0, 0.0)
    with pytest.raises(ConfigError, match=r"model\.negatives"):
        load_config(base={"method": "mib", "model": {"negatives": "some"}})


# ---------------------------------------------------------------------------- architecture
def small(**kw) -> MIBConfig:
    return MIBConfig(z_dim=4, encoder=BackboneConfig(hidden=[16], norm=False), critic_hidden=[16], **kw)


def test_encoder_sharing_and_pairs():
    same = DataSpec([(1, 8, 8), (1, 8, 8)], ["a", "b"], 2)
    assert len(MIB(small(), same).encoders) == 1
    assert len(MIB(small(share_encoder=False), same).encoders) == 2
    m = MIB(small(), DataSpec([(6,), (5,), (6,)], ["a", "b", "c"], 2))
    assert len(m.encoders) == 2 and m.view_encoder == [0, 1, 0] and m.critics.n_pairs == 3
    ref = MIB(MIBConfig(), DataSpec([(1, 28, 28)] * 2, ["a", "b"], 10))    # the reference MNIST demo's sizes
    assert [tuple(w.shape) for w in ref.critics.weights] == [(1, 128, 1024), (1, 1024, 1024), (1, 1024, 1)]
    assert ref.encoders[0](torch.rand(3, 1, 28, 28)).shape == (3, 128)


def test_pairwise_loss_is_the_mean_of_two_view_losses():
    """V = 3: mib_loss equals the mean of three independent two-view MIB losses with the same critics."""
    torch.manual_seed(0)
    v, b, d = 3, 6, 4
    mu, sigma, z = torch.randn(v, b, d), torch.rand(v, b, d) + 0.5, torch.randn(v, b, d)
    critic = MIBCritic(d, [8], n_pairs=3)
    out = mib_loss(mu, sigma, z, torch.ones(b, v, dtype=torch.bool), critic, beta=0.3)
    terms = []
    for p, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        single = MIBCritic(d, [8])
        for w, w_all in zip(single.parameters(), critic.parameters()):
            w.data.copy_(w_all.data[p: p + 1])
        pos, neg = single.scores(z[i], z[j])
        skl = symmetric_kl(mu[i], sigma[i], mu[j], sigma[j], z[i], z[j]).mean()
        terms.append(-mi_jsd_surrogate(pos, neg) + 0.3 * skl)
    assert torch.allclose(out["objective"], torch.stack(terms).mean(), atol=1e-5)


# ---------------------------------------------------------------------------- missing views
def test_missing_views_never_reach_encoders_and_pairs_are_skipped():
    torch.manual_seed(0)
    m = MIB(small(), DataSpec([(6,), (5,), (7,)], ["a", "b", "c"], 2)).eval()
    x = [torch.randn(6, 6), torch.randn(6, 5), torch.randn(6, 7)]
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=torch.bool)
    garbage = [t.clone() for t in x]
    for v in range(3):
        garbage[v][~mask[:, v]] = float("nan")
    a, b = m.encode(x, mask), m.encode(garbage, mask)
    assert all(torch.equal(a[k], b[k]) for k in a)
    mus = [a[f"Z_{v}"] for v in range(3)]
    assert torch.allclose(a["C"][1], (mus[0][1] + mus[2][1]) / 2) and torch.equal(a["C"][5], mus[2][5])
    assert (a["Z_1"][~mask[:, 1]] == 0).all() and a["Z_cat"].shape == (6, 12)
    # the loss is finite and equals the loss computed on each pair's jointly-present samples
    outs = m.raw(garbage, mask)
    params = [posterior_params(o) for o in outs]
    zs = [mu + s * torch.randn_like(mu) for mu, s in params]
    out = m.objective([p[0] for p in params], [p[1] for p in params], zs, mask)
    assert torch.isfinite(out["objective"])
    terms = []
    for p, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        idx = (mask[:, i] & mask[:, j]).nonzero()[:, 0]
        mus, sigmas = [q[0] for q in params], [q[1] for q in params]
        mu, sigma, z = (torch.stack([t[i][idx], t[j][idx]]) for t in (mus, sigmas, zs))
        sub = mib_loss(mu, sigma, z, torch.ones(len(idx), 2, dtype=torch.bool), _slice_critic(m.critics, p), m.beta(0))
        terms.append(sub["objective"])
    assert torch.allclose(out["objective"], torch.stack(terms).mean(), atol=1e-5)
    # a batch where no pair has two joint samples gives an objective without gradient
    lonely = torch.tensor([[1, 0, 0], [0, 1, 0]], dtype=torch.bool)
    m.train()
    out = m.loss(_batch([t[:2] for t in x], lonely))
    assert not out["objective"].requires_grad and out["objective"].item() == 0.0


def _slice_critic(critic: MIBCritic, p: int) -> MIBCritic:
    single = MIBCritic(critic.weights[0].shape[1] // 2, [w.shape[2] for w in critic.weights[:-1]])
    for w, w_all in zip(single.parameters(), critic.parameters()):
        w.data.copy_(w_all.data[p: p + 1])
    return single


def _batch(views, mask):
    from viewsplit.data.multiview import Batch

    return Batch(views, mask, None, torch.arange(mask.shape[0]))


# ---------------------------------------------------------------------------- augmentation
def test_augmentation_feeds_the_loss_only(monkeypatch):
    """``model.augment``: the loss encodes the augmented views (here: a stub augmentation), ``encode`` the raw ones."""
    import viewsplit.methods.mib as mib_module
    from viewsplit.data.augment import AugmentConfig

    torch.manual_seed(0)
    m = MIB(small(augment=AugmentConfig()), DataSpec([(1, 8, 8), (1, 8, 8)], ["a", "b"], 2))
    x = [torch.rand(6, 1, 8, 8), torch.rand(6, 1, 8, 8)]
    mask = torch.ones(6, 2, dtype=torch.bool)
    monkeypatch.setattr(mib_module, "augment", lambda v, cfg: 1.0 - v)
    torch.manual_seed(1)
    augmented = m.loss(_batch(x, mask))["objective"]
    codes = m.eval().encode(x, mask)["Z_cat"]
    m.cfg.augment = None
    assert torch.equal(codes, m.encode(x, mask)["Z_cat"])
    torch.manual_seed(1)
    assert torch.equal(augmented, m.train().loss(_batch([1.0 - v for v in x], mask))["objective"])
    with pytest.raises(ConfigError, match=r"model\.augment\.corruption"):
        small_run(**{"model.augment.corruption": 1.5})


def test_contrast_adds_the_input_neighbour_infonce_of_the_posterior_means():
    """objective = L_MIB + contrast · input_neighbour_contrast(μ_v) (views as keys); the same ε (seeded) gives the
    same L_MIB with the contrast off."""
    torch.manual_seed(0)
    m = MIB(small(contrast=2.0, contrast_temperature=0.3), DataSpec([(5,), (7,), (6,)], list("abc"), 2))
    g = torch.Generator().manual_seed(2)
    x = [torch.randn(12, d, generator=g) for d in (5, 7, 6)]
    mask = torch.ones(12, 3, dtype=torch.bool)
    mask[:3, 2] = False
    torch.manual_seed(1)
    out = m.loss(_batch(x, mask))
    mus = [posterior_params(o)[0] for o in m.raw(x, mask)]
    expected = input_neighbour_contrast(mus, x, mask, 0.3)
    assert out["contrast"].item() == pytest.approx(expected.item(), rel=1e-5)
    m.cfg.contrast = 0.0
    torch.manual_seed(1)
    off = m.loss(_batch(x, mask))
    assert "contrast" not in off
    assert out["objective"].item() == pytest.approx(off["objective"].item() + 2.0 * expected.item(), rel=1e-5)
    with pytest.raises(ConfigError, match=r"model\.contrast"):
        small(contrast=-1.0).validate()


# ---------------------------------------------------------------------------- one optimiser step
def small_run(**over):
    raw = {"method": "mib",
           "data": {"name": "synthetic", "n_samples": 400, "n_views": 2, "view_dim": 12},
           "model": {"z_dim": 4, "encoder": {"hidden": [32], "norm": False}, "critic_hidden": [32],
                     "beta_start": 1e-3, "beta_end": 1.0, "start_iteration": 3, "n_iterations": 10},
           "stages": {"train": {"epochs": 2, "batch_size": 32, "lr": 1e-3}},
           "train": {"progress": "never", "tensorboard": False, "log_every": 1}}
    return load_config(base=raw, overrides=[f"{k}={v}" for k, v in over.items()])


def test_one_optimiser_two_groups_no_alternation(tmp_path):
    cfg = small_run()
    run = prepare(cfg, tmp_path)
    m = run.method
    stage = m.stage("train")
    assert len(stage.steps) == 1 and stage.steps[0].repeats == 1
    opt = make_optimizer(stage.steps[0], cfg.stages["train"])
    assert [g["name"] for g in opt.param_groups] == ["encoders", "critic"]
    assert {g["lr"] for g in opt.param_groups} == {1e-3} and all(g["weight_decay"] == 0 for g in opt.param_groups)
    assert isinstance(opt, torch.optim.Adam)
    # the critic's gradient is that of −Î_JSD alone (SKL does not depend on ψ); the encoders' is not
    batch = next(run.splits.train.batches(32, shuffle=True))
    grads = {}
    for beta in (0.0, 5.0):
        m.zero_grad()
        m.beta = ExponentialScheduler(beta, beta)
        torch.manual_seed(1)
        m.loss(batch)["objective"].backward()
        grads[beta] = ([p.grad.clone() for p in m.critics.parameters()],
                       [p.grad.clone() for p in m.encoders.parameters()])
    assert all(torch.allclose(a, b) for a, b in zip(grads[0.0][0], grads[5.0][0]))
    assert not all(torch.allclose(a, b) for a, b in zip(grads[0.0][1], grads[5.0][1]))
    # one engine step moves encoders and critic together
    m.beta = ExponentialScheduler(1e-3, 1.0, 10, 3)
    trainer = Trainer(cfg, m, run.splits.train, tmp_path)
    owned = trainer._freeze_all_but(stage.steps)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    trainer._train_step(batch, stage.steps, {"model": opt}, owned, cfg.stages["train"], ("train", 0, 0))
    changed = {k.split(".")[0] for k, v in m.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {"encoders", "critics", "global_step"} and int(m.global_step) == 1


def test_resume_continues_beta_from_the_stored_step(tmp_path, monkeypatch):
    over = {"stages.train.epochs": 3}
    full_run = train(small_run(**over), tmp_path / "full")
    full = full_run.method.state_dict()
    # 10 steps per epoch: die in the middle of the second epoch
    train_killed_at(monkeypatch, train, small_run(**over), tmp_path / "cut", 12 + 3)
    state = ckpt.load(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert int(state["model"]["global_step"]) == 10                      # saved at the end of epoch 1
    resumed = train(small_run(**over), tmp_path / "cut", resume=True).method
    assert int(resumed.global_step) == 30
    assert all(torch.equal(full[k], v) for k, v in resumed.state_dict().items())

    def betas(path):
        rows = [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines()]
        return {r["global_step"]: r["beta"] for r in rows if r["kind"] == "step"}

    full_b, cut_b = betas(tmp_path / "full"), betas(tmp_path / "cut")
    sched = ExponentialScheduler(1e-3, 1.0, 10, 3)
    assert all(cut_b[g] == pytest.approx(full_b[g]) for g in full_b)   # the resumed steps log the same β
    assert all(full_b[g] == pytest.approx(sched(g - 1), rel=1e-6) for g in full_b)   # β(t) at the step's t
    assert full_b[30] == pytest.approx(1.0) and full_b[1] == pytest.approx(1e-3)


# ---------------------------------------------------------------------------- DDP
def _ddp_mib(gather: bool = True):
    torch.manual_seed(0)
    cfg = MIBConfig(z_dim=3, encoder=BackboneConfig(hidden=[8], norm=False), critic_hidden=[8], beta_start=0.5,
                    beta_end=0.5, gather_distributed=gather)
    m = MIB(cfg, DataSpec([(5,), (4,), (5,)], ["a", "b", "c"], 2))

    def loss_fn(module, x0, x1, x2, e0, e1, e2, mask):
        mask = mask > 0.5
        outs = module.raw([x0, x1, x2], mask)
        params = [posterior_params(o) for o in outs]
        zs = [mu + s * e for (mu, s), e in zip(params, (e0, e1, e2))]
        return module.objective([p[0] for p in params], [p[1] for p in params], zs, mask)["objective"]

    return m, loss_fn


def test_ddp_gathered_loss_and_gradients_equal_one_process():
    """2 gloo ranks with gather_distributed: the loss and averaged gradients equal one process on the
    whole batch, including rolled negatives across the rank boundary and uneven missing-view pairs."""
    from ddp_helpers import assert_ddp_matches_single

    g = torch.Generator().manual_seed(3)
    n = 12
    xs = [torch.randn(n, d, generator=g) for d in (5, 4, 5)]
    eps = [torch.randn(n, 3, generator=g) for _ in range(3)]
    mask = torch.ones(n, 3)
    mask[1, 1] = mask[2, 0] = mask[8, 2] = mask[9, 1] = mask[10, 1] = 0
    assert_ddp_matches_single(_ddp_mib, [*xs, *eps, mask])


# ---------------------------------------------------------------------------- learning
def test_learns_on_synthetic_data(tmp_path):
    """Three views with shared class factors: the objective falls and a probe on Z_cat is far above chance."""
    torch.set_num_threads(1)
    from viewsplit.eval.evaluate import extract
    from viewsplit.eval.probes import run_probe

    raw = {"method": "mib",
           "data": {"name": "synthetic", "n_samples": 1200, "n_views": 3, "view_dim": 16, "n_classes": 4},
           "model": {"z_dim": 8, "encoder": {"hidden": [64], "norm": False}, "critic_hidden": [64],
                     "beta_start": 1e-4, "beta_end": 1e-3, "start_iteration": 100, "n_iterations": 200},
           "stages": {"train": {"epochs": 12, "batch_size": 64, "lr": 5e-3}},
           "train": {"progress": "never", "tensorboard": False}}
    run = train(load_config(base=raw), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert epochs[-1]["objective"] < epochs[0]["objective"] - 0.3
    assert epochs[-1]["mi_jsd_surrogate"] > -1.0 > epochs[0]["mi_jsd_surrogate"]
    tr, te = extract(run.method, run.splits.train), extract(run.method, run.splits.test)
    acc = run_probe("logreg", tr["Z_cat"], run.splits.train.labels.numpy(), te["Z_cat"], run.splits.test.labels.numpy())
    assert acc["acc"] > 0.85                                                    # chance is 0.25


@pytest.mark.parametrize("path", ["handwritten/mib.yaml", "handwritten/mvinfomax.yaml", "edge_fmnist/mib.yaml",
                                  "edge_fmnist/mib-augpairs.yaml"])
def test_shipped_configs_validate(path):
    cfg = load_config(REPO / "configs" / path)
    assert cfg.method == "mib"
    if "augpairs" in path:
        assert (cfg.data.name, cfg.data.source, cfg.model.share_encoder) == ("augpairs", "edge_fmnist", True)

"""SDL and Soft CCA: docs/methods.md#sdl-soft-cca-and-fae test vectors, running-state semantics, invariances, DDP,
end to end."""
import json

import pytest
import torch

from viewsplit.config import load_config
from viewsplit.errors import ConfigError
from viewsplit.losses import (
    SoftCCALoss,
    StochasticDecorrelationLoss,
    batch_standardize,
    input_keys,
    pairwise_neighbour_info_nce,
)
from viewsplit.methods.base import DataSpec
from viewsplit.methods.softcca import SoftCCA, SoftCCAConfig
from viewsplit.models.backbones import BackboneConfig

Z = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])   # perfectly correlated
A = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])   # exactly uncorrelated


def sdl(**kw) -> StochasticDecorrelationLoss:
    kw.setdefault("eps", 0.0)
    return StochasticDecorrelationLoss(2, **kw)


# ------------------------------------------------------------ test vectors (docs/methods.md#sdl-soft-cca-and-fae)
def test_per_batch_vectors():
    assert torch.allclose(torch.cov(Z.T), torch.full((2, 2), 4 / 3))
    assert sdl(running=False, reduction="mean")(Z).item() == pytest.approx(1.333333, abs=1e-6)   # HEAD k(k-1)-mean
    assert sdl(running=False)(Z).item() == pytest.approx(2.666667, abs=1e-6)
    assert sdl(running=False)(Z).item() / 4 == pytest.approx(0.666667, abs=1e-6)                   # k²-mean
    assert sdl()(Z).item() == pytest.approx(2.666667, abs=1e-6)                                     # paper form, eps 0
    assert sdl(eps=1e-5)(Z).item() == pytest.approx(2.666640, abs=1e-6)                             # eps 1e-5
    assert sdl()(A).item() == 0.0


def test_per_batch_matches_torch_cov_of_standardised_batch():
    torch.manual_seed(0)
    x = torch.randn(50, 5) @ torch.randn(5, 5)
    xt = batch_standardize(x, 0.0)
    cov = torch.cov(xt.T)
    expected = (cov - torch.diag(cov.diagonal())).abs().sum() / 20
    assert StochasticDecorrelationLoss(5, eps=0.0, running=False, reduction="mean")(x).item() == pytest.approx(
        expected.item(), rel=1e-5)


def test_covariance_and_gram_gradients():
    from viewsplit.losses.sdl import gram

    z = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram, (z,))
    m = StochasticDecorrelationLoss(3, eps=1e-3)
    direct = batch_standardize(z, 1e-3)
    assert torch.allclose(m.minibatch_covariance(z), direct.T @ direct / 6)
    assert torch.autograd.gradcheck(lambda x: m.minibatch_covariance(x), (z,))


def test_running_state_vectors():
    m = sdl(alpha=0.5)
    assert m(Z).item() == pytest.approx(2.666667, abs=1e-6) and m.count.item() == 1.0
    assert m(A).item() == pytest.approx(0.888889, abs=1e-6) and m.count.item() == 1.5
    m = sdl(alpha=0.5)
    assert m(A).item() == 0.0
    assert m(Z).item() == pytest.approx(1.777778, abs=1e-6)


def test_count_reaches_the_ema_steady_state():
    m = sdl(alpha=0.2)
    for _ in range(30):
        m(A)
    assert m.count.item() == pytest.approx(1 / (1 - 0.2), rel=1e-6)


def _correlated(seed: int, n: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(n, 1, generator=g)
    return common + 0.5 * torch.randn(n, 4, generator=g)     # every pair positively correlated


def test_gradient_is_scaled_by_one_over_c():
    fresh = StochasticDecorrelationLoss(4)
    z = _correlated(1).requires_grad_()
    fresh(z).backward()
    g_fresh = z.grad.clone()
    m = StochasticDecorrelationLoss(4, alpha=0.5)
    m(_correlated(2))                                           # step 1, same signs of Φ
    z.grad = None
    m(z).backward()                                             # step 2: c = 1.5
    assert m.count.item() == 1.5
    assert torch.allclose(z.grad, g_fresh / 1.5, atol=1e-6)


def test_state_is_only_the_running_covariance_and_gradient_skips_it():
    m = StochasticDecorrelationLoss(4)
    m(_correlated(3))
    assert set(m.state_dict()) == {"cov_acc", "count"}
    assert not m.cov_acc.requires_grad


def test_state_dict_round_trip_gives_the_same_next_step():
    m = StochasticDecorrelationLoss(4, alpha=0.3)
    for s in range(3):
        m(_correlated(s))
    restored = StochasticDecorrelationLoss(4, alpha=0.3)
    restored.load_state_dict(m.state_dict())
    nxt = _correlated(9)
    assert torch.equal(m(nxt), restored(nxt))
    assert torch.equal(m.cov_acc, restored.cov_acc) and torch.equal(m.count, restored.count)


def test_eval_mode_previews_the_next_step_without_committing():
    m = StochasticDecorrelationLoss(4, alpha=0.5)
    m(_correlated(0))
    m(_correlated(1))
    acc, count = m.cov_acc.clone(), m.count.clone()
    z = _correlated(2)
    m.eval()
    value = m(z)
    assert torch.equal(m.cov_acc, acc) and torch.equal(m.count, count)   # nothing committed
    assert torch.equal(m(z), value)                                        # repeatable
    sigma = m.minibatch_covariance(z)
    phi = (0.5 * acc + sigma) / (0.5 * count + 1)
    assert value.item() == pytest.approx((phi - torch.diag(phi.diagonal())).abs().sum().item(), rel=1e-6)
    stale = (0.5 * acc + sigma) / count                                    # dburian's eval (S5): not this
    assert value.item() != pytest.approx((stale - torch.diag(stale.diagonal())).abs().sum().item(), rel=1e-3)
    m.train()
    assert m(z).item() == pytest.approx(value.item(), rel=1e-6)           # the training step it previewed


def test_reset_and_per_batch_mode_leave_no_state():
    m = StochasticDecorrelationLoss(4)
    m(_correlated(0))
    m.reset()
    assert m.count.item() == 0.0 and not m.cov_acc.any()
    assert m(_correlated(1)).item() == pytest.approx(StochasticDecorrelationLoss(4)(_correlated(1)).item())
    per_batch = StochasticDecorrelationLoss(4, running=False)
    per_batch(_correlated(0))
    assert per_batch.count.item() == 0.0


def test_reductions_have_proportional_gradients():
    z1 = _correlated(4).requires_grad_()
    z2 = z1.detach().clone().requires_grad_()
    StochasticDecorrelationLoss(4, reduction="sum")(z1).backward()
    (12 * StochasticDecorrelationLoss(4, reduction="mean")(z2)).backward()     # λ_sum = λ_mean / k(k−1)
    assert torch.allclose(z1.grad, z2.grad, atol=1e-6)


def test_zero_for_exactly_uncorrelated_codes_and_errors():
    h = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float64)
    codes = torch.cat([h[:, 1:], -h[:, 1:]]) * torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64) + 2.0
    assert StochasticDecorrelationLoss(3, eps=0.0)(codes).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        StochasticDecorrelationLoss(3)(torch.randn(1, 3))
    with pytest.raises(ValueError, match="reduction"):
        StochasticDecorrelationLoss(3, reduction="k2")
    with pytest.raises(ValueError, match="alpha"):
        StochasticDecorrelationLoss(3, alpha=1.0)


# ---------------------------------------------------------------------------- Soft CCA loss
def _views(seed: int = 0, n: int = 32, k: int = 3, v: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(n, k, generator=g)
    return [shared @ torch.randn(k, k, generator=g) + 0.3 * torch.randn(n, k, generator=g) for _ in range(v)]


def test_soft_cca_is_invariant_to_positive_affine_maps_before_bn():
    z1, z2 = _views()
    scale, shift = torch.tensor([2.0, 0.1, 7.0]), torch.tensor([-3.0, 5.0, 0.5])
    a = SoftCCALoss(3, eps=0.0)([z1, z2])
    b = SoftCCALoss(3, eps=0.0)([z1 * scale + shift, z2])
    for key in ("objective", "align", "sdl"):
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-5)


def test_soft_cca_alignment_values():
    z1, z2 = _views()
    assert SoftCCALoss(3, eps=0.0)([z1, z1 * 3 + 1])["align"].item() == pytest.approx(0.0, abs=1e-10)
    t1, t2 = batch_standardize(z1, 0.0), batch_standardize(z2, 0.0)
    mse = (t1 - t2).pow(2).mean().item()
    out = SoftCCALoss(3, lam=0.5, eps=0.0)([z1, z2])
    assert out["align"].item() == pytest.approx(mse, rel=1e-5)
    sdl_sum = StochasticDecorrelationLoss(3, reduction="mean", eps=0.0)
    expected_sdl = sdl_sum(z1) + StochasticDecorrelationLoss(3, reduction="mean", eps=0.0)(z2)
    assert out["sdl"].item() == pytest.approx(expected_sdl.item(), rel=1e-5)
    assert out["objective"].item() == pytest.approx(mse + 0.5 * expected_sdl.item(), rel=1e-5)
    fro = SoftCCALoss(3, align="fro", eps=0.0)([z1, z2])["align"].item()
    assert fro == pytest.approx(mse * 32 * 3, rel=1e-5)
    zs = _views(v=3)
    three = SoftCCALoss(3, n_views=3, eps=0.0)(zs)["align"].item()
    pairs = [SoftCCALoss(3, eps=0.0)([zs[i], zs[j]])["align"].item() for i, j in ((0, 1), (0, 2), (1, 2))]
    assert three == pytest.approx(sum(pairs) / 3, rel=1e-5)                # V > 2: mean over pairs


def test_soft_cca_missing_views_use_only_present_samples():
    z1, z2 = _views(n=12)
    mask = torch.ones(12, 2, dtype=torch.bool)
    mask[:3, 1] = False
    garbage = z2.clone()
    garbage[:3] = 1e6
    out = SoftCCALoss(3, eps=0.0)([z1, garbage], mask)
    t1, t2 = batch_standardize(z1, 0.0), batch_standardize(z2[3:], 0.0)
    assert out["align"].item() == pytest.approx((t1[3:] - t2).pow(2).mean().item(), rel=1e-5)
    expected = (StochasticDecorrelationLoss(3, reduction="mean", eps=0.0)(z1)
                + StochasticDecorrelationLoss(3, reduction="mean", eps=0.0)(z2[3:]))
    assert out["sdl"].item() == pytest.approx(expected.item(), rel=1e-5)
    full = SoftCCALoss(3)([z1, z2], torch.ones(12, 2, dtype=torch.bool))["objective"]
    assert full.item() == pytest.approx(SoftCCALoss(3)([z1, z2])["objective"].item())
    # a view present in fewer than two samples is skipped (its SDL state untouched)
    mask[:, 1] = False
    mask[0, 1] = True
    loss = SoftCCALoss(3)
    out = loss([z1, z2], mask)
    assert out["align"].item() == 0.0 and loss.sdl[1].count.item() == 0.0 and loss.sdl[0].count.item() == 1.0


# ---------------------------------------------------------------------------- DDP
def _ddp_sdl():
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 4)
    loss = StochasticDecorrelationLoss(4, alpha=0.5)

    def loss_fn(module, x):
        first = loss(module(x))             # two steps: the second uses the state the first committed
        return first + loss(module(x * 0.5 + 1.0))

    return lin, loss_fn


def _ddp_soft_cca():
    torch.manual_seed(0)
    encoders = torch.nn.ModuleList([torch.nn.Linear(5, 3), torch.nn.Linear(6, 3)])
    loss = SoftCCALoss(3, lam=0.7)

    def loss_fn(module, x1, x2, mask):
        return loss([module[0](x1), module[1](x2)], mask)["objective"]

    return encoders, loss_fn


def test_sdl_under_ddp_equals_one_process_on_the_global_batch():
    from ddp_helpers import assert_ddp_matches_single

    g = torch.Generator().manual_seed(1)
    assert_ddp_matches_single(_ddp_sdl, [torch.randn(16, 5, generator=g)])


def test_soft_cca_with_missing_views_under_ddp_equals_one_process():
    from ddp_helpers import assert_ddp_matches_single

    g = torch.Generator().manual_seed(2)
    mask = torch.ones(16, 2, dtype=torch.bool)
    mask[[1, 5, 9, 14], 1] = False
    assert_ddp_matches_single(_ddp_soft_cca, [torch.randn(16, 5, generator=g), torch.randn(16, 6, generator=g), mask])


# ---------------------------------------------------------------------------- the method
SMALL = BackboneConfig(hidden=[16])


def test_softcca_codes_ignore_missing_views_and_images_work():
    m = SoftCCA(SoftCCAConfig(out_dim=3, backbone=SMALL), DataSpec([(6,), (5,), (4,)], list("abc"), 2)).eval()
    x = [torch.randn(5, 6), torch.randn(5, 5), torch.randn(5, 4)]
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    a = m.encode(x, mask)
    garbage = [t.clone() for t in x]
    for v in range(3):
        garbage[v][~mask[:, v]] = float("nan")
    b = m.encode(garbage, mask)
    assert set(a) == {"Z_0", "Z_1", "Z_2", "Z_cat"} and a["Z_cat"].shape == (5, 9)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (a["Z_1"][~mask[:, 1]] == 0).all()
    img = BackboneConfig(hidden=[8], image="conv", channels=[4, 8])
    m = SoftCCA(SoftCCAConfig(out_dim=3, backbone=img), DataSpec([(1, 12, 12), (1, 12, 12)], ["i", "e"], 2))
    from viewsplit.data import MultiViewDataset

    batch = next(MultiViewDataset([torch.rand(8, 1, 12, 12), torch.rand(8, 1, 12, 12)]).batches(8))
    out = m.stage("train").steps[0].loss(batch)
    out["objective"].backward()
    assert m.encoders[0][0][0][0][0].weight.grad is not None
    assert m.eval().encode(batch.views)["Z_cat"].shape == (8, 6)


def test_softcca_contrast_adds_the_input_neighbour_infonce_of_the_aligned_coordinates():
    """objective = Soft CCA's + contrast · the pairwise two-positive NN-InfoNCE of Z_v[:, :align_dim], neighbours
    by the inputs; with contrast 0 the term is absent."""
    from viewsplit.data import MultiViewDataset

    torch.manual_seed(0)
    spec = DataSpec([(6,), (5,), (4,)], list("abc"), 2)
    m = SoftCCA(SoftCCAConfig(out_dim=4, align_dim=2, contrast=3.0, contrast_temperature=0.3, backbone=SMALL), spec)
    mask = torch.ones(16, 3, dtype=torch.bool)
    mask[[2, 7], 1] = False
    batch = next(MultiViewDataset([torch.randn(16, 6), torch.randn(16, 5), torch.randn(16, 4)], mask=mask).batches(16))
    out = m.loss(batch)
    zs = m.project(batch.views, batch.mask)
    base = m.objective(zs, batch.mask)["objective"]
    contrast = pairwise_neighbour_info_nce([z[:, :2] for z in zs], batch.mask, 0.3, input_keys(batch.views, batch.mask),
                                           own_positive=True)
    assert out["contrast"].item() == pytest.approx(contrast.item(), rel=1e-6)
    assert out["objective"].item() == pytest.approx((base + 3.0 * contrast).item(), rel=1e-5)
    m.cfg.contrast = 0.0
    assert "contrast" not in m.loss(batch)


def test_softcca_config_errors_name_their_keys():
    raw = {"method": "softcca", "data": {"name": "synthetic"}}
    with pytest.raises(ConfigError, match=r"model\.alpha"):
        load_config(base=raw, overrides=["model.alpha=1.5"])
    with pytest.raises(ConfigError, match=r"model\.reduction"):
        load_config(base=raw, overrides=["model.reduction=k2"])
    with pytest.raises(ConfigError, match=r"model\.lam"):
        load_config(base=raw, overrides=["model.lam=-1"])
    with pytest.raises(ConfigError, match=r"model\.align_dim"):
        load_config(base=raw, overrides=["model.out_dim=4", "model.align_dim=5"])
    with pytest.raises(ConfigError, match=r"model\.contrast"):
        load_config(base=raw, overrides=["model.contrast=-1"])
    with pytest.raises(ConfigError, match=r"model\.contrast_temperature"):
        load_config(base=raw, overrides=["model.contrast_temperature=0"])
    cfg = load_config(base=raw)
    assert (cfg.model.alpha, cfg.model.lam, cfg.model.reduction) == (0.2, 0.5, "mean")
    assert (cfg.stages["train"].optimizer, cfg.stages["train"].lr) == ("adam", 1e-3)


def epoch_rows(run_dir) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == "epoch"]


def probe_and_kmeans(run, rep: str) -> tuple[float, float]:
    """Logistic-probe test accuracy and k-means ACC (one seed) of representation ``rep``."""
    from viewsplit.eval.evaluate import extract
    from viewsplit.eval.metrics import kmeans_protocol
    from viewsplit.eval.probes import run_probe

    tr, te = extract(run.method, run.splits.train), extract(run.method, run.splits.test)
    y_tr, y_te = run.splits.train.labels.numpy(), run.splits.test.labels.numpy()
    acc = run_probe("logreg", tr[rep], y_tr, te[rep], y_te)["acc"]
    return acc, kmeans_protocol(te[rep], y_te, int(y_te.max()) + 1, 1, 5)["acc"]["mean"]


SYNTHETIC = {"name": "synthetic", "n_samples": 1200, "n_views": 3, "view_dim": 24, "n_classes": 4}


def test_softcca_learns_on_synthetic_data(tmp_path):
    from viewsplit.engine.run import train

    raw = {"method": "softcca", "data": SYNTHETIC,
           "model": {"out_dim": 4, "backbone": {"hidden": [32]}},
           "stages": {"train": {"epochs": 8, "batch_size": 64}}, "train": {"progress": "never", "threads": 1}}
    run = train(load_config(base=raw), tmp_path / "run")
    rows = epoch_rows(tmp_path / "run")
    assert rows[-1]["objective"] < 0.6 * rows[0]["objective"]
    assert rows[-1]["align"] < 0.5 * rows[0]["align"]
    sdl0 = run.method.objective.sdl[0]                                       # the SDL state advanced
    assert sdl0.count.item() == pytest.approx(1.25) and sdl0.cov_acc.abs().sum() > 0
    assert "objective.sdl.2.cov_acc" in run.method.state_dict()
    acc, kmeans = probe_and_kmeans(run, "Z_cat")
    assert acc > 0.75 and kmeans > 0.6                                       # chance: 0.25

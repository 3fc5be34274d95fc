"""MRDD: docs/methods.md#mrdd and docs/methods.md#club test vectors, stage-2 invariances and parameter isolation."""
import math

import pytest
import torch

from viewsplit.config import load_config
from viewsplit.data import MultiViewDataset
from viewsplit.data.multiview import Batch
from viewsplit.engine.run import prepare
from viewsplit.engine.trainer import Trainer, make_optimizer
from viewsplit.errors import ConfigError
from viewsplit.losses import (
    CLUBSample,
    club_all_pairs,
    club_sample,
    consistency_objective,
    gaussian_kl,
    gaussian_kl_per_dim,
    gaussian_loglik,
    input_keys,
    neighbour_info_nce,
)
from viewsplit.methods.base import DataSpec
from viewsplit.methods.mrdd import MRDD, MRDDConfig
from viewsplit.models.backbones import BackboneConfig
from viewsplit.models.masking import feature_mask, patch_mask


# ---------------------------------------------------------------------------- masking
@pytest.mark.parametrize("size, patch, ratio, zeros", [(32, 2, 0.7, 179 * 4), (32, 2, 0.8, 204 * 4),
                                                        (64, 4, 0.7, 179 * 16)])
def test_patch_mask_counts(size, patch, ratio, zeros):
    x = torch.ones(3, 1, size, size)
    y = patch_mask(x, ratio, patch)
    assert ((y == 0).sum((1, 2, 3)) == zeros).all()
    assert torch.equal(x, torch.ones_like(x))                     # input unchanged
    assert not torch.equal(y[0], y[1])                            # masks differ per sample


def test_patch_mask_keeps_unmasked_pixels_and_is_seedable():
    x = torch.rand(2, 3, 32, 32) + 0.1
    y = patch_mask(x, 0.7, 2)
    kept = y != 0
    assert torch.equal(y[kept], x[kept])
    assert (kept.all(1) | (~kept).all(1)).all()                  # the same pixels in every channel
    a = patch_mask(x, 0.7, 2, torch.Generator().manual_seed(3))
    b = patch_mask(x, 0.7, 2, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, patch_mask(x, 0.7, 2))
    assert torch.equal(patch_mask(x, 0.0, 2), x)
    v = feature_mask(torch.ones(4, 10), 0.3)
    assert ((v == 0).sum(1) == 3).all()


# ---------------------------------------------------------------------------- losses
def test_kl_vectors():
    assert gaussian_kl(torch.ones(1, 10), torch.zeros(1, 10)).item() == pytest.approx(5.0)
    assert gaussian_kl(torch.zeros(1, 10), torch.zeros(1, 10)).item() == 0.0
    # per dim: μ 1, σ² 1 → ½; μ 0, σ² 2 → ½ (2 − 1 − ln 2) = 0.1534264
    per_dim = gaussian_kl_per_dim(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]]))
    assert per_dim[0].tolist() == pytest.approx([0.5, 0.1534264], abs=1e-6)


def test_stage1_loss_vector():
    xs = [torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)]
    x_hats = [torch.ones(2, 1, 2, 2), torch.ones(2, 1, 2, 2)]
    mask = torch.ones(2, 2, dtype=torch.bool)
    mu, logvar = torch.ones(2, 10), torch.zeros(2, 10)
    out = consistency_objective(xs, x_hats, mask, mu, logvar, alpha=1.0)
    assert (out["reconstruction"].item(), out["kl"].item(), out["objective"].item()) == (16.0, 5.0, 21.0)
    assert consistency_objective(xs, x_hats, mask, mu, logvar, alpha=0.5)["objective"].item() == 13.0
    # a missing view contributes nothing
    half = torch.tensor([[True, True], [True, False]])
    assert consistency_objective(xs, x_hats, half, mu, logvar)["reconstruction"].item() == 12.0


def test_club_vectors():
    y = torch.zeros(5, 4)
    assert gaussian_loglik(y, torch.zeros(5, 4), y).item() == 0.0
    assert gaussian_loglik(y + 1, torch.zeros(5, 4), y).item() == -4.0
    lv = torch.full((1, 2), math.log(2.0))
    assert gaussian_loglik(torch.ones(1, 2), lv, torch.zeros(1, 2)).item() == pytest.approx(-2.3862944, abs=1e-6)
    y = torch.tensor([[0.0], [1.0], [2.0]])
    assert club_sample(y, torch.zeros(3, 1), y, torch.tensor([1, 2, 0])).item() == pytest.approx(1.0)
    assert club_all_pairs(y, torch.zeros(3, 1), y).item() == pytest.approx(0.6666667, abs=1e-6)


def test_club_near_zero_for_independent_variables():
    torch.manual_seed(0)
    x, y = torch.randn(4000, 2), torch.randn(4000, 2)
    critic = CLUBSample(2, 2, 32)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        critic.learning_loss(x, y).backward()
        opt.step()
    with torch.no_grad():
        assert abs(critic.all_pairs(x, y).item()) < 0.05
        dep = x @ torch.tensor([[1.0, 0.0], [0.0, 1.0]]) + 0.1 * y     # strongly dependent pair for contrast
    critic = CLUBSample(2, 2, 32)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        critic.learning_loss(x, dep).backward()
        opt.step()
    with torch.no_grad():
        assert critic.all_pairs(x, dep).item() > 1.0


# ---------------------------------------------------------------------------- architecture
def _reference_cfg(**kw) -> MRDDConfig:
    return MRDDConfig(**kw)


def test_reference_shapes_edge_mnist():
    m = MRDD(_reference_cfg(), DataSpec([(1, 32, 32), (1, 32, 32)], ["image", "edge"], 10)).eval()
    enc = m.consistency.encoders[0][0]
    x = torch.rand(3, 1, 32, 32)
    assert enc(x).shape == (3, 8, 8, 8) and len(m.consistency.encoders) == 1    # one encoder shared by both views
    assert m.consistency.fc_z.in_features == 1024 and m.consistency.fc_z.out_features == 20
    mu, logvar = m.consistency.posterior([x, x], torch.ones(3, 2, dtype=torch.bool))
    assert mu.shape == logvar.shape == (3, 10)
    assert m.consistency.decoders[0](mu).shape == (3, 1, 32, 32)
    assert m.consistency.decoders[0][2](torch.rand(3, 8, 8, 8)).shape == (3, 1, 32, 32)


def test_reference_shapes_coil():
    coil = BackboneConfig(image="resnet", res_hidden=32, ch_mult=[1, 2, 4, 8])
    spec_cfg = BackboneConfig(image="resnet", res_hidden=32, ch_mult=[1, 2, 4, 8], latent_ch=10)
    m = MRDD(_reference_cfg(consistency=coil, specific=spec_cfg), DataSpec([(3, 64, 64)] * 3, list("abc"), 20))
    assert m.consistency.encoders[0][0](torch.rand(2, 3, 64, 64)).shape == (2, 8, 8, 8)
    assert m.specific[0].encoder[1].in_features == 640
    assert (m.specific[0].decoder[0].in_features, m.specific[0].decoder[0].out_features) == (20, 640)


# ---------------------------------------------------------------------------- stage 2 invariances
def small_mrdd(**over):
    raw = {"method": "mrdd",
           "data": {"name": "synthetic", "n_samples": 200, "n_views": 2, "view_dim": 12},
           "model": {"c_dim": 3, "v_dim": 3, "mask_ratio": 0.5, "bn_recalibrate": True,
                     "consistency": {"hidden": [16]}, "specific": {"hidden": [16]}},
           "stages": {"consistency": {"epochs": 1, "batch_size": 32}, "disentangle": {"epochs": 2, "batch_size": 32}},
           "train": {"progress": "never"}}
    return load_config(base=raw, overrides=[f"{k}={v}" for k, v in over.items()])


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_frozen_consistency_model_is_bit_identical_after_stage2(tmp_path):
    cfg = small_mrdd()
    run = prepare(cfg, tmp_path)
    m = run.method
    trainer = Trainer(cfg, m, run.splits.train, tmp_path)

    trainer.run_stage("consistency")
    before = state(m.consistency)
    dec_before = state(m.specific[0].decoder)
    c1 = m.encode(run.splits.test.views)["C"]
    trainer.run_stage("disentangle")
    after = state(m.consistency)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(dec_before[k], v) for k, v in m.specific[0].decoder.state_dict().items())   # D1
    m.train()
    assert not m.consistency.training and m.specific.training     # D2: asking for train mode cannot unfreeze it
    m.eval()
    c2 = m.encode(run.splits.test.views)["C"]
    assert torch.equal(c1, c2)
    v_a, v_b = m.encode(run.splits.test.views)["V_1"], m.encode(run.splits.test.views)["V_1"]
    assert torch.equal(v_a, v_b)                                    # D3: means, not samples


def test_critic_and_model_steps_update_only_their_parameters(tmp_path):
    cfg = small_mrdd()
    run = prepare(cfg, tmp_path)
    m = run.method
    trainer = Trainer(cfg, m, run.splits.train, tmp_path)
    stage = m.stage("disentangle")
    assert [s.name for s in stage.steps] == ["critic", "model"]
    owned = trainer._freeze_all_but(stage.steps)
    opts = {s.name: make_optimizer(s, cfg.stages["disentangle"]) for s in stage.steps}
    batch = next(run.splits.train.batches(32))
    enc0, critic0 = state(m.specific), state(m.critics)
    trainer._train_step(batch, stage.steps[:1], opts, owned, cfg.stages["disentangle"], ("d", 0, 0))
    assert all(torch.equal(enc0[k], v) for k, v in m.specific.state_dict().items() if "running" not in k
               and "num_batches" not in k)
    assert any(not torch.equal(critic0[k], v) for k, v in m.critics.state_dict().items())
    critic1, enc1 = state(m.critics), state(m.specific)
    batch = next(run.splits.train.batches(32))
    trainer._train_step(batch, stage.steps[1:], opts, owned, cfg.stages["disentangle"], ("d", 0, 0))
    assert all(torch.equal(critic1[k], v) for k, v in m.critics.state_dict().items())
    assert any(not torch.equal(enc1[k], v) for k, v in m.specific.state_dict().items())


def test_orders_and_released_code_mode():
    spec = DataSpec([(6,), (5,)], ["a", "b"], 2)
    small = BackboneConfig(hidden=[8])
    m = MRDD(MRDDConfig(order="model_first", n_critic=5, consistency=small, specific=small), spec)
    steps = m.stage("disentangle").steps
    assert [(s.name, s.repeats) for s in steps] == [("model", 1), ("critic", 5)]
    m = MRDD(MRDDConfig(stage2="released_code", consistency=small, specific=small), spec)
    (step,) = m.stage("disentangle").steps
    ds = MultiViewDataset([torch.randn(16, 6), torch.randn(16, 5)])
    out = step.loss(next(ds.batches(16)))
    out["objective"].backward()
    # the released loop never trains the decoders (defect D1, reproduced on request only)
    assert all(p.grad is None for p in m.specific[0].decoder.parameters())
    assert m.specific[0].encoder[0][0].weight.grad is not None


def test_missing_view_values_cannot_change_codes():
    spec = DataSpec([(6,), (5,)], ["a", "b"], 2)
    small = BackboneConfig(hidden=[8])
    m = MRDD(MRDDConfig(consistency=small, specific=small), spec).eval()
    x = [torch.randn(4, 6), torch.randn(4, 5)]
    mask = torch.tensor([[True, True], [True, False], [False, True], [True, False]])
    a = m.encode(x, mask)
    garbage = [x[0].clone(), x[1].clone()]
    garbage[1][~mask[:, 1]] = 1e6
    garbage[0][~mask[:, 0]] = float("nan")
    b = m.encode(garbage, mask)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (a["V_1"][~mask[:, 1]] == 0).all()          # the prior mean where the view is missing
    for missing_decoder in ("stage2", "stage1"):
        m.cfg.missing_decoder = missing_decoder
        preds = m.predict(garbage, mask)
        assert [p.shape for p in preds] == [(4, 6), (4, 5)] and all(torch.isfinite(p).all() for p in preds)
        for v in range(2):   # a present view from the stage-2 decoder, a missing one as configured
            stage2 = m.specific[v].decoder(torch.cat([a[f"V_{v}"], a["C"]], 1))
            missing = m.consistency.decoders[v](a["C"]) if missing_decoder == "stage1" else stage2
            assert torch.equal(preds[v][mask[:, v]], stage2[mask[:, v]])
            assert torch.equal(preds[v][~mask[:, v]], missing[~mask[:, v]])


class _FixedPosterior(torch.nn.Module):
    """μ = x · diag(scale), logvar = 0: per-dim KL to N(0, 1) is ½ · scale² · E[x²]."""

    def __init__(self, scale: list[float]):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x * self.scale, torch.zeros_like(x)], 1)


@pytest.mark.parametrize(("v_min_kl", "kept"), [(0.1, [True, True, False]), (0.2, [True, False, False])])
def test_v_min_kl_drops_the_specific_dims_below_the_threshold_known_answer(v_min_kl, kept):
    """x = ±1, scales (1, 0.5, 0.2): mean KL per dim 0.5, 0.125, 0.02 nats.  Missing samples (huge values)
    do not count; a dropped dim is 0 in ``encode`` with σ 0, the kept dims are unchanged; loading weights saved
    without ``v_active`` keeps every dim."""
    spec = DataSpec([(3,), (3,)], ["a", "b"], 2)
    small = BackboneConfig(hidden=[8])
    m = MRDD(MRDDConfig(v_dim=3, v_min_kl=v_min_kl, consistency=small, specific=small), spec).eval()
    for vae in m.vaes:
        vae.encoder = _FixedPosterior([1.0, 0.5, 0.2])
    sign = torch.tensor([1.0, -1.0]).repeat(8)[:, None].expand(16, 3).contiguous()
    mask = torch.ones(16, 2, dtype=torch.bool)
    mask[:4, 1] = False
    x1 = sign.clone()
    x1[:4] = 1e3                                            # would dominate the KL if it were counted
    ds = MultiViewDataset([sign, x1], mask=mask)
    old = {k: v for k, v in m.state_dict().items() if k != "v_active"}
    m.stage("disentangle").on_end(ds, torch.device("cpu"))
    assert m.v_active.tolist() == [kept, kept]
    codes, post = m.encode(ds.views, mask), m.posteriors(ds.views, mask)
    keep = torch.tensor(kept)
    assert torch.equal(codes["V_0"][:, keep], (sign * m.vaes[0].encoder.scale)[:, keep])
    assert (codes["V_0"][:, ~keep] == 0).all() and (post["V_0"][1][:, ~keep] == 0).all()
    assert (codes["V_1"][:4] == 0).all() and (post["V_1"][1][:4] == 0).all()
    m.stage("disentangle").on_end(ds, torch.device("cpu"))        # idempotent
    assert m.v_active.tolist() == [kept, kept]
    m.load_state_dict(old)
    assert bool(m.v_active.all())
    assert MRDD(MRDDConfig(consistency=small, specific=small), spec).stage("disentangle").on_end is None   # off


def test_view_drop_hides_whole_views_from_the_encoder_but_keeps_them_as_targets(monkeypatch):
    spec = DataSpec([(6,), (5,), (4,)], ["a", "b", "c"], 2)
    small = BackboneConfig(hidden=[8])
    m = MRDD(MRDDConfig(mask_ratio=0.0, view_drop=1.0, consistency=small, specific=small), spec).train()
    x = [torch.randn(64, 6), torch.randn(64, 5), torch.randn(64, 4)]
    mask = torch.ones(64, 3, dtype=torch.bool)
    mask[:8, 2] = False
    seen, original = [], m.consistency.posterior
    monkeypatch.setattr(m.consistency, "posterior", lambda views, msk: (seen.append(msk), original(views, msk))[1])
    targets = []
    monkeypatch.setattr("viewsplit.methods.mrdd.consistency_objective",
                        lambda xs, x_hats, msk, *a: (targets.append(msk), {"objective": x_hats[0].sum()})[1])
    m.consistency_loss(Batch(views=x, mask=mask, labels=None, index=torch.arange(64)))
    enc_mask = seen[0]
    assert enc_mask.any(1).all() and not (enc_mask & ~mask).any()     # ≥ 1 view, never an absent one
    assert (enc_mask != mask).any()                                    # whole views were hidden
    assert torch.equal(targets[0], mask)                               # every present view is a target
    m.eval()
    seen.clear()
    m.encode(x, mask)
    assert torch.equal(seen[0], mask)                                  # never at inference


def test_augment_shares_one_transform_across_image_views_and_leaves_the_targets_clean(monkeypatch):
    from viewsplit.data.augment import AugmentConfig, augment_registered

    torch.manual_seed(0)
    img = torch.rand(16, 1, 8, 8)
    out = augment_registered([img, img.clone(), torch.zeros(16, 5)], AugmentConfig())
    assert torch.equal(out[0], out[1]) and not torch.equal(out[0], img)   # registered views, one transform
    assert out[2].abs().sum() > 0                                         # a vector view gets its own noise
    cfg = load_config(None, ["method=mrdd", "model.augment={degrees: 5}"])
    assert cfg.model.augment.degrees == 5 and cfg.model.augment.shear == 15
    with pytest.raises(ConfigError, match=r"model\.augment\.corruption"):
        load_config(None, ["method=mrdd", "model.augment={corruption: 1.5}"])
    spec = DataSpec([(1, 8, 8), (1, 8, 8)], ["a", "b"], 2)
    conv = BackboneConfig(image="conv", channels=[4])
    m = MRDD(MRDDConfig(mask_ratio=0.0, augment=AugmentConfig(), consistency=conv, specific=conv), spec).train()
    inputs, targets = [], []
    original = m.consistency.posterior
    monkeypatch.setattr(m.consistency, "posterior", lambda views, msk: (inputs.append(views), original(views, msk))[1])
    monkeypatch.setattr("viewsplit.methods.mrdd.consistency_objective",
                        lambda xs, x_hats, msk, *a: (targets.append(xs), {"objective": x_hats[0].sum()})[1])
    m.consistency_loss(Batch(views=[img, img.clone()], mask=torch.ones(16, 2, dtype=torch.bool), labels=None,
                             index=torch.arange(16)))
    assert not torch.equal(inputs[0][0], img) and torch.equal(targets[0][0], img)


@pytest.mark.parametrize("contrast, neighbours, own", [(0.0, "code", False), (3.0, "code", False),
                                                      (3.0, "input", True)])
def test_aligned_halves_each_half_predicts_the_other_and_agreement_is_known(monkeypatch, contrast, neighbours, own):
    """stage1_align: S and its complement T encoded in one batch of 2B, each reconstructing the other;
    with α = 0 and no KL the objective is exactly stage1_align · mean over two-half samples ‖μ_S − μ_T‖²
    (+ stage1_contrast · the nearest-neighbour InfoNCE of μ_S and μ_T over the same samples, the neighbours
    from the codes or from the inputs, with or without the sample's own T-code as a second positive)."""
    spec = DataSpec([(3,), (3,), (3,)], ["a", "b", "c"], 2)
    small = BackboneConfig(hidden=[8])
    m = MRDD(MRDDConfig(c_dim=3, mask_ratio=0.0, stage1_targets="hidden", stage1_align=2.0, alpha=0.0,
                        kl_weight=0.0, stage1_contrast=contrast, contrast_temperature=0.3, consistency=small,
                        contrast_neighbours=neighbours, contrast_own_positive=own,
                        specific=small), spec).train()
    x = [torch.randn(40, 3) for _ in range(3)]
    mask = torch.ones(40, 3, dtype=torch.bool)
    mask[:10, 1:] = False                       # single-view samples: no complement, no agreement term
    mask[10:20, 2] = False
    inputs, targets = [], []
    monkeypatch.setattr(m.consistency, "posterior", lambda views, msk: (
        inputs.append((views, msk)), (sum(v * msk[:, i:i + 1] for i, v in enumerate(views)), torch.zeros(80, 3)))[1])
    original = consistency_objective
    monkeypatch.setattr("viewsplit.methods.mrdd.consistency_objective",
                        lambda xs, x_hats, msk, *a: (targets.append(msk), original(xs, x_hats, msk, *a))[1])
    out = m.consistency_loss(Batch(views=x, mask=mask, labels=None, index=torch.arange(40)))
    views, enc = inputs[0]
    assert len(inputs) == 1 and all(torch.equal(v, torch.cat([xv, xv])) for v, xv in zip(views, x))
    seen, other = enc.chunk(2)
    pair = mask.sum(1) > 1
    assert torch.equal(seen | other, mask) and not (seen & other)[pair].any()   # S and T split the present views
    assert torch.equal(other[~pair], seen[~pair]) and seen.any(1).all()
    assert torch.equal(targets[0], torch.cat([other & pair[:, None], seen & pair[:, None]]))
    mu_s = sum(xv * seen[:, i:i + 1] for i, xv in enumerate(x))
    mu_t = sum(xv * other[:, i:i + 1] for i, xv in enumerate(x))
    expected = ((mu_s - mu_t) ** 2).sum(1)[pair].mean()
    assert torch.allclose(out["agreement"], expected)
    keys = input_keys(x, mask)[pair]
    nce = (neighbour_info_nce(mu_s[pair], mu_t[pair], 0.3, keys if neighbours == "input" else None, own)
           if contrast else torch.tensor(0.0))
    assert ("contrast" in out) == bool(contrast) and torch.allclose(out.get("contrast", nce), nce)
    assert torch.allclose(out["objective"], 2.0 * expected + contrast * nce)


@pytest.mark.parametrize("key", ["stage1_align", "stage1_contrast"])
def test_view_pairing_terms_need_hidden_targets(key):
    with pytest.raises(ConfigError, match=rf"{key}.*hidden"):
        MRDDConfig(**{key: 1.0}).validate()
    MRDDConfig(**{key: 1.0}, stage1_targets="hidden").validate()
    with pytest.raises(ConfigError, match=r"contrast_temperature"):
        MRDDConfig(contrast_temperature=0.0).validate()
    with pytest.raises(ConfigError, match=r"contrast_neighbours"):
        MRDDConfig(contrast_neighbours="views").validate()


def test_c_dim_mismatch_between_stages_is_an_error():
    spec = DataSpec([(6,), (5,)], ["a", "b"], 2)
    small = BackboneConfig(hidden=[8])
    saved = MRDD(MRDDConfig(c_dim=20, consistency=small, specific=small), spec).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch"):
        MRDD(MRDDConfig(c_dim=10, consistency=small, specific=small), spec).load_state_dict(saved)


def test_edge_fmnist_like_images_run_through_both_stages(tmp_path):
    from helpers import write_mnist_like

    write_mnist_like(tmp_path / "idx", n_train=64, n_test=16)
    raw = {"method": "mrdd", "data": {"name": "edge_mnist", "root": str(tmp_path / "idx")},
           "model": {"consistency": {"image": "conv", "channels": [4, 8]},
                     "specific": {"image": "conv", "channels": [4, 8]},
                     "bn_recalibrate": True, "recon_reduction": "batch_mean"},
           "stages": {"consistency": {"epochs": 1, "batch_size": 16}, "disentangle": {"epochs": 1, "batch_size": 16}},
           "train": {"progress": "never"}}
    cfg = load_config(base=raw)
    from viewsplit.engine.run import train

    run = train(cfg, tmp_path / "run")
    codes = run.method.eval().encode(run.splits.test.stack_views_float())
    assert set(codes) == {"C", "V_0", "V_1"} and codes["C"].shape == (16, 10)
    from viewsplit.engine.run import evaluate_run

    run.cfg.eval.kmeans_seeds, run.cfg.eval.probes = 1, ["knn"]
    metrics = evaluate_run(run)
    names = sorted(p.name for p in (tmp_path / "run" / "figures").glob("*.png"))
    assert names == ["view0_reconstructions.png", "view0_swap.png", "view1_reconstructions.png", "view1_swap.png"]
    from PIL import Image

    assert Image.open(tmp_path / "run" / "figures" / "view0_swap.png").size == (8 * 34 + 2, 9 * 34 + 2)
    assert set(metrics["prediction"]) == {"view_0", "view_1"} and metrics["prediction"]["view_1"]["from_views"] == [0]


def test_predict_and_redundancy_from_the_command_line(tmp_path):
    import numpy as np

    from viewsplit.cli import main

    raw = small_mrdd().to_dict()
    raw["stages"]["consistency"]["epochs"] = 3
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 0
    assert main(["predict", str(tmp_path / "run"), "--views", "view0", "--out", str(tmp_path / "p.npz")]) == 0
    z = np.load(tmp_path / "p.npz")
    assert set(z.files) == {"index", "pred_view1"} and z["pred_view1"].shape == (40, 12)
    assert main(["predict", str(tmp_path / "run"), "--views", "0,1"]) == 2           # nothing left to predict
    assert main(["eval", str(tmp_path / "run"), "--mine", "eval.mine_runs=2", "eval.mine_epochs=2",
                 "eval.kmeans_seeds=1", "eval.probes=[knn]"]) == 0
    import json

    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(m["redundancy"]) == {"V_0", "V_1"} and len(m["redundancy"]["V_0"]["mine_nats"]["per_run"]) == 2

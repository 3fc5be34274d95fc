"""Factorisation autoencoder with SDL: loss composition, missing views, prediction, end to end."""
import pytest
import torch

from viewsplit.config import load_config
from viewsplit.data import MultiViewDataset
from viewsplit.errors import ConfigError
from viewsplit.losses import SoftCCALoss, input_keys, masked_view_mse, pairwise_neighbour_info_nce
from viewsplit.methods.base import DataSpec
from viewsplit.methods.fae import FactorisationAE, FAEConfig
from viewsplit.models.backbones import BackboneConfig

SPEC = DataSpec([(6,), (5,), (4,)], list("abc"), 2)
SMALL = BackboneConfig(hidden=[16])


def test_loss_is_reconstruction_plus_weighted_alignment_of_shared_codes_sdl_and_contrast():
    """objective = rec + λ_align · align(s) + λ_sdl · SDL + contrast · pairwise input-neighbour InfoNCE(s_v, s_w)."""
    torch.manual_seed(0)
    cfg = FAEConfig(shared_dim=2, private_dim=3, lam_align=2.0, lam_sdl=0.7, contrast=1.5, contrast_temperature=0.4,
                    backbone=SMALL)
    m = FactorisationAE(cfg, SPEC)
    batch = next(MultiViewDataset([torch.randn(16, 6), torch.randn(16, 5), torch.randn(16, 4)]).batches(16))
    m.train()
    out = m.loss(batch)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    codes = m.codes(batch.views, batch.mask)
    recon = masked_view_mse(batch.views, [d(c) for d, c in zip(m.decoders, codes)], batch.mask)
    ref = SoftCCALoss(5, 3, align_dim=2, gather_distributed=False)
    terms = ref(codes)                                        # fresh SDL state = the state before m.loss
    assert out["reconstruction"].item() == pytest.approx(recon.item(), rel=1e-4)
    assert out["align"].item() == pytest.approx(terms["align"].item(), rel=1e-5)
    assert out["sdl"].item() == pytest.approx(terms["sdl"].item(), rel=1e-5)
    contrast = pairwise_neighbour_info_nce([c[:, :2] for c in codes], batch.mask, 0.4,
                                           input_keys(batch.views, batch.mask), own_positive=True)
    assert out["contrast"].item() == pytest.approx(contrast.item(), rel=1e-5)
    assert out["objective"].item() == pytest.approx(recon.item() + 2.0 * terms["align"].item()
                                                    + 0.7 * terms["sdl"].item() + 1.5 * contrast.item(), rel=1e-4)
    assert state["objective.sdl.0.count"].item() == 1.0       # one committed SDL step per view
    assert m.encode(batch.views)["C"].shape == (16, 2) and m.encode(batch.views)["V_2"].shape == (16, 3)


def test_missing_views_never_reach_encoders_and_predict_fills_them():
    m = FactorisationAE(FAEConfig(shared_dim=2, private_dim=3, backbone=SMALL), SPEC).eval()
    x = [torch.randn(4, 6), torch.randn(4, 5), torch.randn(4, 4)]
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=torch.bool)
    a = m.encode(x, mask)
    garbage = [t.clone() for t in x]
    for v in range(3):
        garbage[v][~mask[:, v]] = float("nan")
    b = m.encode(garbage, mask)
    assert set(a) == {"C", "V_0", "V_1", "V_2"} and all(torch.equal(a[k], b[k]) for k in a)
    assert (a["V_1"][~mask[:, 1]] == 0).all()
    codes = m.codes(x, mask)
    assert torch.allclose(a["C"][1], (codes[0][1, :2] + codes[2][1, :2]) / 2)        # mean over available views
    preds = m.predict(garbage, mask)
    assert [p.shape for p in preds] == [(4, 6), (4, 5), (4, 4)] and all(torch.isfinite(p).all() for p in preds)
    fill = torch.cat([a["C"][1:2], torch.zeros(1, 3)], 1)
    assert torch.allclose(preds[1][1:2], m.decoders[1](fill))                          # missing: Dec([C ; 0])
    assert torch.allclose(preds[0][1:2], m.decoders[0](codes[0][1:2]))                 # present: its own code
    no_private = FactorisationAE(FAEConfig(shared_dim=2, private_dim=0, backbone=SMALL), SPEC).eval()
    assert set(no_private.encode(x, mask)) == {"C"}


def test_image_views_train_and_config_errors():
    img = BackboneConfig(hidden=[8], image="conv", channels=[4, 8])
    spec = DataSpec([(1, 12, 12)] * 2, ["i", "e"], 2)
    m = FactorisationAE(FAEConfig(shared_dim=2, private_dim=2, backbone=img), spec)
    batch = next(MultiViewDataset([torch.rand(8, 1, 12, 12), torch.rand(8, 1, 12, 12)]).batches(8))
    m.stage("train").steps[0].loss(batch)["objective"].backward()
    assert all(p.grad is not None for p in m.decoders[1].parameters())
    assert m.eval().predict(batch.views, torch.tensor([[True, False]] * 8))[1].shape == (8, 1, 12, 12)
    raw = {"method": "fae", "data": {"name": "synthetic"}}
    with pytest.raises(ConfigError, match=r"model\.shared_dim"):
        load_config(base=raw, overrides=["model.shared_dim=0"])
    with pytest.raises(ConfigError, match=r"model\.lam_sdl"):
        load_config(base=raw, overrides=["model.lam_sdl=-0.1"])
    with pytest.raises(ConfigError, match=r"model\.contrast"):
        load_config(base=raw, overrides=["model.contrast=-2"])


def test_fae_learns_on_synthetic_data(tmp_path):
    """The shared code predicts the class; reconstruction falls; missing views beat the mean-view baseline."""
    from test_sdl import SYNTHETIC, epoch_rows, probe_and_kmeans

    from viewsplit.engine.run import train
    from viewsplit.eval.prediction import prediction_report

    raw = {"method": "fae", "data": SYNTHETIC,
           "model": {"shared_dim": 4, "private_dim": 4, "backbone": {"hidden": [32]}},
           "stages": {"train": {"epochs": 8, "batch_size": 64}}, "train": {"progress": "never", "threads": 1}}
    run = train(load_config(base=raw), tmp_path / "run")
    rows = epoch_rows(tmp_path / "run")
    assert rows[-1]["objective"] < 0.6 * rows[0]["objective"]
    assert rows[-1]["reconstruction"] < 0.7 * rows[0]["reconstruction"]
    acc, kmeans = probe_and_kmeans(run, "C")
    assert acc > 0.75 and kmeans > 0.6                                       # chance: 0.25
    pred = prediction_report(run.method, run.splits.train, run.splits.test)
    assert all(p["ratio"] < 0.95 for p in pred.values())

"""DMRNet and its fusion baseline: docs/methods.md#dmrnet test vectors, training-only modality drop,
masked views that cannot change any output, the weak-combination choice, and learning."""
import json
import math

import pytest
import torch
from conftest import REPO

from viewsplit.config import load_config
from viewsplit.data.multiview import Batch, MultiViewDataset
from viewsplit.engine import checkpoint as ckpt
from viewsplit.engine.run import prepare, train
from viewsplit.errors import ConfigError, DataError
from viewsplit.losses import (
    DMRNetLoss,
    WeakCombinationTracker,
    combination_codes,
    combination_masks,
    hard_combination_loss,
    pme_kl,
)
from viewsplit.methods.base import DataSpec
from viewsplit.methods.dmrnet import DMRNet, DMRNetConfig, ProbabilisticEmbedding
from viewsplit.methods.fusion import Fusion, FusionConfig
from viewsplit.models.backbones import BackboneConfig, feature_encoder
from viewsplit.models.masking import modality_drop

SMALL = {"z_dim": 6, "backbone": BackboneConfig(hidden=[8], channels=[4, 8], conv_norm="layer")}
SHAPES = [(5,), (1, 8, 8), (3,)]


def build(cls=DMRNet, shapes=SHAPES, **over):
    cfg = (DMRNetConfig if cls is DMRNet else FusionConfig)(**{**SMALL, **over})
    cfg.validate()
    torch.manual_seed(0)
    return cls(cfg, DataSpec([tuple(s) for s in shapes], [f"v{i}" for i in range(len(shapes))], 3))


def views_for(n: int, shapes=SHAPES, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, *s, generator=g) for s in shapes]


def batch(views, mask, labels=None) -> Batch:
    n = mask.shape[0]
    return Batch(views, mask, torch.arange(n) % 3 if labels is None else labels, torch.arange(n))


# ---------------------------------------------------------------------------- test vectors: KL
def test_kl_vectors():
    assert pme_kl(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0                       # μ = 0, σ = 1
    assert pme_kl(torch.tensor([[1.0, 2.0]] * 3), torch.zeros(3, 2)).item() == pytest.approx(2.5)
    d = 5                                                                                   # σ² = 2: per dim
    per_dim = pme_kl(torch.zeros(2, d), torch.full((2, d), math.log(2.0))).item() / d
    assert per_dim == pytest.approx(0.1534264, abs=1e-7) == 0.5 * (2 - math.log(2) - 1)


def test_objective_is_ce_plus_weighted_kl_and_hard_term():
    g = torch.Generator().manual_seed(0)
    logits, aux = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    y, mu, logvar = torch.tensor([0, 1, 2, 0, 1, 2]), torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    codes = torch.tensor([1, 2, 3, 1, 3, 2])
    hard = torch.tensor([True, False, False])                                               # code 1 = view 0 only
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    out = DMRNetLoss(alpha=0.1, beta=0.5)(logits, y, mu, logvar, codes, hard)
    l_hard = (ce[0] + ce[3]) / 6                                                            # over the full batch
    assert out["hard"].item() == pytest.approx(l_hard.item())
    assert out["objective"].item() == pytest.approx((ce.mean() + 0.1 * pme_kl(mu, logvar) + 0.5 * l_hard).item())
    assert out["hard_fraction"].item() == pytest.approx(2 / 6)
    ce_aux = torch.nn.functional.cross_entropy(aux, y, reduction="none")                    # separate head
    out = DMRNetLoss(alpha=0.1, beta=0.5)(logits, y, mu, logvar, codes, hard, aux)
    assert out["hard"].item() == pytest.approx(((ce_aux[0] + ce_aux[3]) / 6).item())


# ---------------------------------------------------------------------------- test vectors: sampling
def test_combination_frequencies_are_uniform():
    g = torch.Generator().manual_seed(0)
    drawn = modality_drop(torch.ones(30_000, 2, dtype=torch.bool), generator=g)
    freq = torch.bincount(combination_codes(drawn), minlength=4)[1:].double() / 30_000
    assert torch.allclose(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01)   # [1,0], [0,1], [1,1]
    # V = 3 with view 2 missing: uniform over the 3 non-empty subsets of {0, 1}; never view 2
    mask = torch.tensor([[True, True, False]]).expand(30_000, 3)
    drawn = modality_drop(mask, generator=g)
    assert not drawn[:, 2].any() and drawn.any(1).all()
    freq = torch.bincount(combination_codes(drawn), minlength=4)[1:].double() / 30_000
    assert torch.allclose(freq, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.01)
    # rate 0 keeps every mask; combination codes and masks invert each other
    assert torch.equal(modality_drop(mask, rate=0.0), mask)
    assert torch.equal(combination_codes(combination_masks(4)), torch.arange(1, 16))


def test_hard_loss_is_zero_not_nan_without_weak_samples():
    ce = torch.tensor([0.7, 1.2, 0.3], requires_grad=True)
    out = hard_combination_loss(ce, torch.tensor([2, 3, 3]), torch.tensor([True, False, False]))
    assert out.item() == 0.0 and not torch.isnan(out)
    out.backward()                                                                          # and differentiable
    assert torch.equal(ce.grad, torch.zeros(3))


def test_weak_modality_selection_picks_the_higher_variance():
    tracker = WeakCombinationTracker(2)
    n = 10
    codes = torch.tensor([1] * n + [2] * n + [3] * n)                                       # audio, visual, both
    var = torch.cat([torch.full((n,), 2.0), torch.full((n,), 1.0), torch.full((n,), 9.0)])
    tracker.update(var[:15], codes[:15])                                                    # two uneven batches
    tracker.update(var[15:], codes[15:])
    tracker.end_epoch()
    assert torch.allclose(tracker.scores(), torch.tensor([2.0, 1.0, 9.0], dtype=torch.float64))   # ÷ count (N4)
    assert tracker.choose(1).tolist() == [1] and tracker.hard.tolist() == [True, False, False]   # audio only
    assert tracker.choose(1, "all").tolist() == [1]                                         # the full set never
    assert tracker.choose(5).tolist() == [1, 2]                                             # k > candidates


def test_tracker_skips_empty_combinations_and_averages_epochs():
    tracker = WeakCombinationTracker(2)
    tracker.update(torch.tensor([1.0, 3.0]), torch.tensor([1, 1]))                          # epoch 0: no visual-only
    tracker.end_epoch()
    assert not torch.isnan(tracker.scores()[0]) and tracker.score_epochs.tolist() == [1, 0, 0]
    tracker.update(torch.tensor([4.0, 1.5]), torch.tensor([1, 2]))                          # epoch 1
    tracker.end_epoch()
    assert tracker.scores()[:2].tolist() == [3.0, 1.5]                                      # mean of (2, 4); 1.5
    assert tracker.counts.sum() == 0 and tracker.choose(1).tolist() == [1]
    never = WeakCombinationTracker(3)
    assert never.choose(1).numel() == 0 and not never.hard.any()                            # nothing seen yet


# ---------------------------------------------------------------------------- eval and masking
def test_pme_returns_mu_in_eval_and_samples_in_training():
    torch.manual_seed(0)
    pme = ProbabilisticEmbedding(7, 4)
    h = torch.randn(10, 7)
    pme.train()
    e1, mu, _ = pme(h)
    e2, _, _ = pme(h)
    assert not torch.equal(e1, e2) and not torch.equal(e1, mu)
    pme.eval()
    a, b = pme(h), pme(h)
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], b[0])                             # e = μ exactly


def test_mask_zeroes_the_absent_view_features_exactly():
    m = build(shapes=[(5,), (1, 8, 8)]).eval()
    x = views_for(6, [(5,), (1, 8, 8)])
    mask = torch.tensor([[True, False]] * 6)
    out = m.encode(x, mask)
    width = feature_encoder((1, 8, 8), SMALL["backbone"])[1]
    assert torch.equal(out["H_1"], torch.zeros(6, width)) and out["H_0"].abs().sum() > 0
    assert out["Z"].shape == (6, 6) and m.predict_logits(x, mask).shape == (6, 3)


@pytest.mark.parametrize("cls", [DMRNet, Fusion])
def test_modality_drop_only_in_training(cls):
    m = build(cls)
    x = views_for(16)
    full = torch.ones(16, 3, dtype=torch.bool)
    m.train()
    torch.manual_seed(0)
    assert not torch.equal(m.training_mask(full), full)
    m.eval()
    assert torch.equal(m.training_mask(full), full)
    torch.manual_seed(1)
    a = (m.encode(x), m.predict_logits(x), m.loss(batch(x, full))["objective"])
    torch.manual_seed(2)
    b = (m.encode(x), m.predict_logits(x), m.loss(batch(x, full))["objective"])
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    # the eval loss is the CE (+ α KL) of the un-dropped, un-sampled logits
    ce = torch.nn.functional.cross_entropy(a[1], torch.arange(16) % 3)
    assert a[2].item() >= ce.item() - 1e-6


@pytest.mark.parametrize("cls", [DMRNet, Fusion])
def test_garbage_in_masked_views_changes_nothing(cls):
    m = build(cls)
    x = views_for(8)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1], [1, 1, 1]],
                        dtype=torch.bool)
    garbage = [t.clone() for t in x]
    for v in range(3):
        garbage[v][~mask[:, v]] = float("nan")
    garbage[2][:] = torch.where(mask[:, 2:], garbage[2], 1e30)      # huge values instead of NaN: the same
    m.eval()
    a, b = m.encode(x, mask), m.encode(garbage, mask)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(m.predict_logits(x, mask), m.predict_logits(garbage, mask))
    # a view absent from the whole batch
    only0 = torch.tensor([[True, False, False]] * 8)
    assert torch.equal(m.predict_logits(x, only0), m.predict_logits([x[0], garbage[1] * 0 + 7, x[2] + 1], only0))
    # training: same RNG → the same loss, gradients and BatchNorm statistics
    results = []
    for views in (x, garbage):
        mm = build(cls).train()
        torch.manual_seed(5)
        out = mm.loss(batch(views, mask))
        out["objective"].backward()
        results.append((out, [p.grad.clone() for p in mm.parameters() if p.grad is not None], mm.state_dict()))
    (oa, ga, sa), (ob, gb, sb) = results
    assert all(torch.equal(oa[k], ob[k]) for k in oa) and torch.isfinite(oa["objective"])
    assert len(ga) == len(gb) and all(torch.equal(p, q) for p, q in zip(ga, gb))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_training_needs_labels_and_bad_configs_raise():
    m = build()
    ds = MultiViewDataset(views_for(4), labels=torch.tensor([0, 1, -1, 2]))
    with pytest.raises(DataError, match="supervised"):
        m.stage("train").on_start(ds, torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"model\.hard_candidates"):
        load_config(base={"method": "dmrnet", "model": {"hard_candidates": "pairs"}})
    with pytest.raises(ConfigError, match=r"model\.drop_rate"):
        load_config(base={"method": "fusion", "model": {"drop_rate": 1.5}})
    with pytest.raises(ConfigError, match="at most 16 views"):
        DMRNet(DMRNetConfig(), DataSpec([(2,)] * 17, [str(i) for i in range(17)], 3))
    with pytest.raises(ConfigError, match="supervised"):
        Fusion(FusionConfig(), DataSpec([(2,)] * 2, ["a", "b"], 0))


def test_separate_aux_head_is_trained_by_the_hard_term_only():
    m = build(aux_head="separate").train()
    assert any(p is q for p in m.aux_classifier.parameters() for q in m.stage("train").steps[0].parameters())
    x = views_for(12)
    m.tracker.hard[:] = True                                                  # every combination is hard
    m.loss(batch(x, torch.ones(12, 3, dtype=torch.bool)))["objective"].backward()
    assert m.aux_classifier.weight.grad.abs().sum() > 0
    m.zero_grad()
    m.tracker.hard[:] = False
    m.loss(batch(x, torch.ones(12, 3, dtype=torch.bool)))["objective"].backward()
    assert m.aux_classifier.weight.grad is None or m.aux_classifier.weight.grad.abs().sum() == 0


# ---------------------------------------------------------------------------- the engine
def synthetic_raw(method: str, **model) -> dict:
    return {"method": method,
            "data": {"name": "synthetic", "n_samples": 1200, "n_views": 3, "view_dim": 16, "n_classes": 4},
            "model": {"z_dim": 16, "backbone": {"hidden": [32]}, **model},
            "stages": {"train": {"epochs": 8, "batch_size": 64, "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0,
                                 "scheduler": "none"}},
            "train": {"progress": "never", "tensorboard": False, "threads": 1}}


def test_weak_combination_is_chosen_after_warmup_and_kept_in_checkpoints(tmp_path):
    cfg = load_config(base=synthetic_raw("dmrnet", warmup_epochs=2), overrides=["stages.train.epochs=3",
                                                                                "train.log_every=1"])
    run = train(cfg, tmp_path / "run")
    m = run.method
    assert int(m.epochs_done) == 3 and m.tracker.score_epochs[[0, 1, 3]].tolist() == [2, 2, 2]
    assert len(m.hard_combinations()) == 1 and len(m.hard_combinations()[0]) == 1        # one single view
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    assert all(r["hard"] == 0.0 for r in steps if r["epoch"] < 2)
    assert sum(r["hard_fraction"] for r in steps if r["epoch"] == 2) > 0                 # L_hard from epoch 2 on
    state = ckpt.load(tmp_path / "run" / "checkpoints" / "final.pt")["model"]
    assert torch.equal(state["tracker.hard"], m.tracker.hard) and int(state["epochs_done"]) == 3


@pytest.mark.parametrize("method", ["dmrnet", "fusion"])
def test_learns_on_synthetic_data(tmp_path, method):
    """The objective falls and the classifier is far above chance (0.25) with all views and on average."""
    model = {"warmup_epochs": 2} if method == "dmrnet" else {}
    run = train(load_config(base=synthetic_raw(method, **model)), tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert epochs[-1]["ce"] < 0.5 * epochs[0]["ce"]
    m, ds = run.method.eval(), run.splits.test
    accs = []
    with torch.no_grad():
        for combo in combination_masks(3):
            pred = m.predict_logits(ds.stack_views_float(), combo.expand(len(ds), 3)).argmax(1)
            accs.append((pred == ds.labels).float().mean().item())
    assert accs[-1] > 0.9 and sum(accs) / len(accs) > 0.8


def test_prepare_builds_both_methods_from_shipped_configs(tmp_path):
    for path in ("handwritten/dmrnet.yaml", "handwritten/fusion.yaml", "edge_fmnist/dmrnet.yaml",
                 "edge_fmnist/fusion.yaml"):
        cfg = load_config(REPO / "configs" / path)
        assert cfg.method == path.split("/")[1][:-5] and cfg.eval.representations == ["Z"]
    cfg = load_config(REPO / "configs" / "handwritten" / "dmrnet.yaml")
    m = prepare(cfg, tmp_path).method
    assert isinstance(m, DMRNet) and m.tracker.hard.numel() == 63
    assert (cfg.model.alpha, cfg.model.beta, cfg.model.warmup_epochs) == (1e-3, 0.2, 6)

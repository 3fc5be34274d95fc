"""DeCUR: docs/methods.md#decur test vectors, invariances, global N, DDP equivalence, parameter groups, learning."""
import json

import pytest
import torch

from viewsplit.config import load_config
from viewsplit.engine.run import train
from viewsplit.engine.trainer import make_optimizer
from viewsplit.errors import ConfigError
from viewsplit.eval.evaluate import extract
from viewsplit.eval.probes import run_probe
from viewsplit.losses import (
    BarlowTwinsLoss,
    DeCURLoss,
    barlow_twins_loss,
    barlow_twins_objective,
    common_unique_objectives,
    cross_correlation,
    decur_loss,
    input_neighbour_contrast,
)
from viewsplit.methods.base import DataSpec
from viewsplit.methods.decur import DeCUR, DeCURConfig
from viewsplit.models.backbones import BackboneConfig

A = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
B = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
Z = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)


# ---------------------------------------------------------------------------- test vectors (docs/methods.md#decur)
@pytest.mark.parametrize("eps, expected", [(0.0, 0.5 / 3), (1e-5, 0.1666633)])
def test_decur_loss_vector(eps, expected):
    terms = decur_loss([A, A], [A, A], n_common=1, eps=eps)
    assert torch.allclose(cross_correlation(A, A, eps=0.0), torch.eye(2, dtype=torch.float64))
    assert terms["loss"].item() == pytest.approx(expected, abs=1e-7)
    assert terms["intra"].item() == pytest.approx(0.0, abs=1e-9)
    assert terms["common"].item() == pytest.approx(0.0, abs=1e-9)
    assert terms["unique"].item() == pytest.approx(1.0 / (1.0 + eps) ** 2, abs=1e-9)
    assert DeCURLoss(n_common=1, eps=eps)([A, A], [A, A]).item() == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize("eps, expected", [(0.0, 4.0), (1e-5, 3.99996)])
def test_barlow_twins_vector(eps, expected):
    c = cross_correlation(B, A, eps=eps)
    assert torch.allclose(c, torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64)) / (1 + eps))
    assert barlow_twins_objective(c).item() == pytest.approx(expected, abs=1e-5)
    assert barlow_twins_loss(B, A, eps=eps).item() == pytest.approx(expected, abs=1e-5)
    assert BarlowTwinsLoss(eps=eps)(B, A).item() == pytest.approx(expected, abs=1e-5)
    com, uni = common_unique_objectives(cross_correlation(B, A, eps=0.0), n_common=1)
    assert (com.item(), uni.item()) == (pytest.approx(0.0), pytest.approx(1.0))


def test_off_diagonal_blocks_are_ignored():
    cz, ca = cross_correlation(Z, Z, eps=0.0), cross_correlation(A, A, eps=0.0)
    assert torch.allclose(cz, torch.ones(2, 2, dtype=torch.float64))
    assert cz[0, 1] != ca[0, 1]
    for c in (cz, ca):
        com, uni = common_unique_objectives(c, n_common=1)
        assert (com.item(), uni.item()) == (pytest.approx(0.0), pytest.approx(1.0))
    # a large off-diagonal block changes nothing; the same entries inside a block do
    c = torch.eye(4, dtype=torch.float64)
    c[:2, 2:] = 0.9
    c[2:, :2] = -0.7
    com, uni = common_unique_objectives(c, n_common=2)
    assert (com.item(), uni.item()) == (pytest.approx(0.0), pytest.approx(2.0))
    c[0, 1] = 0.5
    c[2, 3] = 0.5
    com, uni = common_unique_objectives(c, n_common=2)
    assert com.item() == pytest.approx(0.0051 * 0.25) and uni.item() == pytest.approx(2.0 + 0.0051 * 0.25)


def test_no_unique_block_is_barlow_twins_with_intra_terms():
    g = torch.Generator().manual_seed(0)
    z = [torch.randn(32, 6, generator=g, dtype=torch.float64) for _ in range(4)]
    terms = decur_loss(z[:2], z[2:], n_common=6)
    assert terms["unique"].item() == 0.0
    cross = barlow_twins_loss(z[0], z[1])
    intra = (barlow_twins_loss(z[0], z[2]) + barlow_twins_loss(z[1], z[3])) / 2
    assert terms["loss"].item() == pytest.approx(((2 * intra + cross / 2) / 3).item(), rel=1e-12)


# ---------------------------------------------------------------------------- invariances
def _random_embeddings(seed: int, n: int = 64, k: int = 8, views: int = 2):
    g = torch.Generator().manual_seed(seed)
    return ([torch.randn(n, k, generator=g, dtype=torch.float64) for _ in range(views)],
            [torch.randn(n, k, generator=g, dtype=torch.float64) for _ in range(views)])


def test_positive_affine_map_before_bn_leaves_loss_unchanged():
    z1, z2 = _random_embeddings(1)
    g = torch.Generator().manual_seed(2)

    def affine(z):
        return z * (torch.rand(z.shape[1], generator=g, dtype=torch.float64) * 5 + 0.1) \
            + torch.randn(z.shape[1], generator=g, dtype=torch.float64) * 3

    for eps, atol in ((0.0, 1e-10), (1e-5, 1e-4)):
        ref = decur_loss(z1, z2, n_common=6, eps=eps)["loss"]
        moved = decur_loss([affine(z) for z in z1], [affine(z) for z in z2], n_common=6, eps=eps)["loss"]
        assert torch.allclose(ref, moved, atol=atol)


def test_permuting_rows_leaves_loss_unchanged():
    z1, z2 = _random_embeddings(3, views=3)
    mask = torch.rand(64, 3, generator=torch.Generator().manual_seed(4)) > 0.3
    mask[:, 0] = True
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(5))
    ref = decur_loss(z1, z2, 5, mask=mask)["loss"]
    moved = decur_loss([z[perm] for z in z1], [z[perm] for z in z2], 5, mask=mask[perm])["loss"]
    assert torch.allclose(ref, moved, atol=1e-12)


def test_correlation_divides_by_the_true_batch_size():
    # the same samples repeated: identical statistics, so Ĉ must not change (it would with a fixed divisor)
    c = cross_correlation(A, B)
    assert torch.allclose(cross_correlation(torch.cat([A, A, A]), torch.cat([B, B, B])), c)
    z1, z2 = _random_embeddings(6, n=16)
    ref = decur_loss(z1, z2, 6)["loss"]
    assert torch.allclose(decur_loss([torch.cat([z, z]) for z in z1], [torch.cat([z, z]) for z in z2], 6)["loss"], ref)


def test_missing_views_use_only_samples_with_both_views():
    z1, z2 = _random_embeddings(7, n=40, views=3)
    mask = torch.ones(40, 3, dtype=torch.bool)
    mask[:10, 1] = False
    mask[30:, 2] = False
    ref = decur_loss(z1, z2, 5, mask=mask)
    junk = [z.clone() for z in z1], [z.clone() for z in z2]
    for zs in junk:
        zs[1][:10] = 1e3
        zs[2][30:] = -7.0
    assert torch.allclose(decur_loss(*junk, 5, mask=mask)["loss"], ref["loss"])
    keep = mask[:, 1] & mask[:, 2]
    pair = common_unique_objectives(cross_correlation(z1[1][keep], z1[2][keep]), 5)
    full = [common_unique_objectives(cross_correlation(z1[0][mask[:, w]], z1[w][mask[:, w]]), 5) for w in (1, 2)]
    assert ref["common"].item() == pytest.approx((pair[0] + full[0][0] + full[1][0]).item() / 3, rel=1e-10)


# ---------------------------------------------------------------------------- distributed
def _ddp_decur():
    torch.manual_seed(0)
    module = torch.nn.ModuleList([torch.nn.Linear(5, 6), torch.nn.Linear(4, 6)])

    def loss_fn(m, x1a, x1b, x2a, x2b, mask):
        z1 = [m[0](x1a), m[1](x2a)]
        z2 = [m[0](x1b), m[1](x2b)]
        return decur_loss(z1, z2, n_common=4, mask=mask)["loss"]

    return module, loss_fn


def test_ddp_two_processes_match_single_process():
    from ddp_helpers import assert_ddp_matches_single

    g = torch.Generator().manual_seed(8)
    n = 15                                              # uneven shards: 8 and 7 rows
    mask = torch.ones(n, 2, dtype=torch.bool)
    mask[[1, 9, 12], 1] = False
    inputs = [torch.randn(n, 5, generator=g), torch.randn(n, 5, generator=g), torch.randn(n, 4, generator=g),
              torch.randn(n, 4, generator=g), mask]
    assert_ddp_matches_single(_ddp_decur, inputs)


# ---------------------------------------------------------------------------- the method
SPEC = DataSpec([(12,), (9,), (7,)], ["a", "b", "c"], 3)


def _method(**kw) -> DeCUR:
    torch.manual_seed(0)
    return DeCUR(DeCURConfig(projector=[16, 8], backbone=BackboneConfig(hidden=[16]), **kw), SPEC)


def test_projectors_not_shared_by_default():
    m = _method()
    assert len(m.projectors) == 3
    ids = [{id(p) for p in m.projector_of(v).parameters()} for v in range(3)]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    shared = DeCUR(DeCURConfig(projector=[16, 8], backbone=BackboneConfig(hidden=[16]), share_projector=True), SPEC)
    assert len(shared.projectors) == 1 and shared.projector_of(0) is shared.projector_of(2)


def test_parameter_groups_exclude_biases_and_norms_from_weight_decay():
    from viewsplit.config import StageConfig

    m = _method(bias_lr_scale=0.5)
    step = m.stage("train").steps[0]
    opt = make_optimizer(step, StageConfig(optimizer="adamw", lr=0.1, weight_decay=0.01))
    assert isinstance(opt, torch.optim.AdamW)
    decayed, free = opt.param_groups
    assert decayed["weight_decay"] == 0.01 and decayed["lr"] == 0.1
    assert free["weight_decay"] == 0.0 and free["lr"] == pytest.approx(0.05)
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in free["params"])
    norms = [p for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm1d) for p in mod.parameters()]
    biases = [mod.bias for mod in m.modules() if isinstance(mod, torch.nn.Linear) and mod.bias is not None]
    assert norms and biases
    assert {id(p) for p in free["params"]} == {id(p) for p in norms + biases}
    assert len(decayed["params"]) + len(free["params"]) == len(list(m.parameters()))


def test_encode_representations_and_missing_views():
    m = _method(common_fraction=0.75).eval()
    g = torch.Generator().manual_seed(9)
    views = [torch.randn(10, d, generator=g) for d in (12, 9, 7)]
    out = m.encode(views)
    assert out["C"].shape == (10, 6) and out["V_0"].shape == (10, 2) and out["B_1"].shape == (10, 16)
    assert out["B_cat"].shape == (10, 48)
    mask = torch.ones(10, 3, dtype=torch.bool)
    mask[:, 1:] = False
    only0 = m.encode([views[0], torch.full_like(views[1], 1e6), views[2] * 0 + float("nan")], mask)
    assert torch.allclose(only0["C"], m.encode([views[0]] * 1 + views[1:], mask)["C"])
    assert torch.equal(only0["V_1"], torch.zeros(10, 2)) and torch.isfinite(only0["B_cat"]).all()
    assert torch.allclose(only0["B_0"], out["B_0"])
    assert "V_0" not in _method(common_fraction=1.0).eval().encode(views)


def test_missing_views_never_reach_the_encoders_in_training():
    m = _method().train()
    g = torch.Generator().manual_seed(10)
    views = [torch.randn(16, d, generator=g) for d in (12, 9, 7)]
    mask = torch.ones(16, 3, dtype=torch.bool)
    mask[:5, 2] = False
    from viewsplit.data.multiview import Batch

    def run(vs):
        torch.manual_seed(11)
        return m.loss(Batch(vs, mask, None, torch.arange(16)))["objective"]

    poisoned = [*views[:2], views[2].clone().index_fill_(0, torch.arange(5), float("nan"))]
    assert torch.allclose(run(views), run(poisoned))


def test_contrast_adds_the_input_neighbour_infonce_of_the_first_augmentations_common_dims():
    """objective = DeCUR's + contrast · input_neighbour_contrast(z_v¹[:, :K_c]) with the clean views as keys; the
    same augmentations (seeded) give the same DeCUR terms with the contrast off."""
    from viewsplit.data.augment import augment
    from viewsplit.data.multiview import Batch

    m = _method(contrast=2.0, contrast_temperature=0.3).train()
    g = torch.Generator().manual_seed(12)
    views = [torch.randn(16, d, generator=g) for d in (12, 9, 7)]
    mask = torch.ones(16, 3, dtype=torch.bool)
    mask[:4, 1] = False
    batch = Batch(views, mask, None, torch.arange(16))
    torch.manual_seed(13)
    out = m.loss(batch)
    torch.manual_seed(13)
    z1 = []
    for v, (x, gen) in enumerate(zip(views, m._augment_generators())):
        z1.append(m.embed(v, augment(x, m.cfg.augment, gen), mask[:, v])[1])
        augment(x, m.cfg.augment)                                       # the second augmentation's draws
    k_c = m.cfg.n_common
    expected = input_neighbour_contrast([z[:, :k_c] for z in z1], views, mask, 0.3)
    assert out["contrast"].item() == pytest.approx(expected.item(), rel=1e-5)
    m.cfg.contrast = 0.0
    torch.manual_seed(13)
    off = m.loss(batch)
    assert "contrast" not in off
    assert out["objective"].item() == pytest.approx(off["objective"].item() + 2.0 * expected.item(), rel=1e-5)
    with pytest.raises(ConfigError, match=r"model\.contrast"):
        DeCURConfig(contrast=-1.0).validate()


def test_aligned_crops_share_the_first_augmentation_only_when_asked():
    from viewsplit.data.augment import augment

    spec = DataSpec([(1, 8, 8), (1, 8, 8)], ["image", "edge"], 2)
    x = torch.rand(4, 1, 8, 8)
    for aligned in (False, True):
        m = DeCUR(DeCURConfig(projector=[8], backbone=BackboneConfig(channels=[4]), aligned_crops=aligned), spec)
        torch.manual_seed(0)
        g0, g1 = m._augment_generators()
        a, b = augment(x, m.cfg.augment, g0), augment(x, m.cfg.augment, g1)
        assert torch.equal(a, b) == aligned


# ---------------------------------------------------------------------------- learning
def test_learns_on_synthetic_data(tmp_path):
    cfg = load_config(None, [
        "method=decur", "data.name=synthetic", "data.n_samples=800", "data.n_views=2", "data.view_dim=16",
        "model.projector=[64,32]", "model.backbone.hidden=[64]", "model.augment.noise_std=0.1",
        "stages.train.epochs=15", "stages.train.batch_size=128", "stages.train.lr=2e-3",
        "train.threads=1", "train.progress=never", "train.tensorboard=false"])
    run = train(cfg, tmp_path / "run")
    rows = [r for r in map(json.loads, (tmp_path / "run" / "log.jsonl").read_text().splitlines())
            if r["kind"] == "epoch"]
    assert rows[-1]["objective"] < 0.5 * rows[0]["objective"]
    tr = extract(run.method, run.splits.train)
    te = extract(run.method, run.splits.test)
    y_tr, y_te = run.splits.train.labels.numpy(), run.splits.test.labels.numpy()
    acc = run_probe("logreg", tr["C"], y_tr, te["C"], y_te)["acc"]
    assert acc > 0.6                                   # 4 classes: chance is 0.25
    assert run.method.z_std.ne(1.0).any()              # standardisation computed at the end of training


def test_claims_benchmark_correlations_known_answer():
    """benchmarks/decur_claims.py: per-dim cross-view Pearson correlation, mean and worst pair."""
    from helpers import import_benchmark

    cross_view_correlations = import_benchmark("decur_claims").cross_view_correlations
    a, b = A.numpy(), (3.0 * B + 1.0).numpy()                 # dim 0 agrees (+1), dim 1 is mirrored (−1)
    two = cross_view_correlations([a, b], n_common=1)
    assert two["common"] == pytest.approx(1.0) and two["common_min_pair"] == pytest.approx(1.0)
    assert two["unique"] == pytest.approx(-1.0) and two["unique_abs"] == pytest.approx(1.0)
    c = a[:, ::-1].copy()                                       # dim 0 = [1, −1, −1, 1]: uncorrelated with a's
    three = cross_view_correlations([a, b, c], n_common=1)
    assert three["common"] == pytest.approx(1.0 / 3.0) and three["common_min_pair"] == pytest.approx(0.0)

"""DCCA: docs/methods.md#dcca test vectors, invariances, finite gradients, the m ≤ k error, DDP, end to end."""
import itertools

import pytest
import torch

from viewsplit.config import load_config
from viewsplit.errors import ConfigError
from viewsplit.losses import BatchTooSmallError, DCCALoss, dcca_correlation
from viewsplit.methods.base import DataSpec
from viewsplit.methods.dcca import DCCA, DCCAConfig
from viewsplit.models.backbones import BackboneConfig

F64 = torch.float64
A = torch.tensor([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=F64)
M = torch.tensor([[2, 1], [0.5, -3]], dtype=F64)
X = torch.tensor([[1], [-1], [1], [-1]], dtype=F64)
Y = torch.tensor([[1], [-1], [-1], [1]], dtype=F64)


def loss(h1, h2, eps=0.0, variant="trace", **kw) -> float:
    return DCCALoss(eps, variant, **kw)(h1, h2).item()


def eigh_correlation(h1, h2, eps=0.0):
    """The eigh-based objective (cca_zoo / DCCA_corr.m): S^{-1/2} from an eigendecomposition."""
    def inv_sqrt(s):
        w, v = torch.linalg.eigh(s)
        return v @ torch.diag(w.rsqrt()) @ v.T

    m = h1.shape[0]
    a, b = h1 - h1.mean(0), h2 - h2.mean(0)
    s11 = a.T @ a / (m - 1) + eps * torch.eye(a.shape[1], dtype=F64)
    s22 = b.T @ b / (m - 1) + eps * torch.eye(b.shape[1], dtype=F64)
    return torch.linalg.svdvals(inv_sqrt(s11) @ (a.T @ b / (m - 1)) @ inv_sqrt(s22)).sum()


# ---------------------------------------------------------------------------- test vectors (docs/methods.md#dcca)
def test_vectors():
    assert loss(A, A) == pytest.approx(-2.0, abs=1e-12)
    assert loss(A, A, variant="squared") == pytest.approx(-2.0, abs=1e-12)
    assert loss(A, A, eps=1e-3) == pytest.approx(-1.99850112, abs=1e-8)
    assert loss(A, A, eps=1e-3, variant="squared") == pytest.approx(-1.99700337, abs=1e-8)
    assert loss(A, A @ M) == pytest.approx(-2.0, abs=1e-12)
    assert loss(A, -A[:, [1, 0]]) == pytest.approx(-2.0, abs=1e-12)            # sign and permutation
    assert loss(X, Y) == pytest.approx(0.0, abs=1e-12)
    assert loss(X, X + Y) == pytest.approx(-0.70710678, abs=1e-8)
    assert loss(X, X + Y, variant="squared") == pytest.approx(-0.5, abs=1e-12)


def test_statistical_vectors():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(1000, 5, generator=g, dtype=F64), torch.randn(1000, 5, generator=g, dtype=F64)
    assert -0.05 < loss(z1, z2, 1e-5, "squared") < -0.01          # ≈ −d²/(m − 1) = −0.025
    assert -0.4 < loss(z1, z2, 1e-5) < -0.2                       # ≈ −0.29
    mz = z1 @ torch.randn(5, 5, generator=g, dtype=F64)
    assert loss(z1, mz, 1e-5, "squared") == pytest.approx(-5.0, abs=2e-3)
    assert loss(z1, mz, 1e-5) == pytest.approx(-5.0, abs=2e-3)


def test_invariant_to_invertible_linear_maps_and_matches_eigh():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(200, 3, generator=g, dtype=F64)
    h1 = torch.cat([s, torch.randn(200, 1, generator=g, dtype=F64)], 1)                  # k_1 = 4
    h2 = s @ torch.randn(3, 3, generator=g, dtype=F64) + 0.5 * torch.randn(200, 3, generator=g, dtype=F64)
    base = loss(h1, h2)
    m1, m2 = torch.randn(4, 4, generator=g, dtype=F64), torch.randn(3, 3, generator=g, dtype=F64)
    assert loss(h1 @ m1 + 3.0, h2 @ m2 - 1.0) == pytest.approx(base, rel=1e-9)
    assert loss(h2, h1) == pytest.approx(base, rel=1e-9)
    assert -base == pytest.approx(eigh_correlation(h1, h2).item(), rel=1e-9)
    top1 = dcca_correlation(h1, h2, 0.0, "trace", top_k=1).item()
    assert 0 < top1 < 1 and top1 > -base / 3                     # the largest of three correlations
    assert dcca_correlation(h1, h2, 0.0, "trace", top_k=3).item() == pytest.approx(-base)


def test_cholesky_gradients_are_finite_where_eigh_gives_nan():
    z1, z2 = A.clone().requires_grad_(), (A @ M).requires_grad_()
    eigh_correlation(z1, z2).backward()
    assert torch.isnan(z1.grad).any()                              # repeated eigenvalues of S11 = 4/3 I
    z1, z2 = A.clone().requires_grad_(), (A @ M).requires_grad_()
    DCCALoss(0.0)(z1, z2).backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    z1 = torch.randn(20, 3, requires_grad=True)                   # float32 in, float64 inside
    out = DCCALoss()(z1, z1.detach() @ torch.randn(3, 3) + 0.1 * torch.randn(20, 3))
    out.backward()
    assert out.dtype == torch.float32 and torch.isfinite(z1.grad).all()


def test_batch_not_larger_than_k_is_a_clear_error():
    with pytest.raises(BatchTooSmallError, match=r"m = 4 <= k = 4"):
        DCCALoss()(torch.randn(4, 4), torch.randn(4, 2))
    assert issubclass(BatchTooSmallError, ValueError) and issubclass(BatchTooSmallError, ConfigError)
    with pytest.raises(ValueError, match="variant"):
        DCCALoss(variant="nuclear")


def test_more_views_pool_the_pairs_and_missing_views_use_joint_samples():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(40, 2, generator=g)
    hs = [s @ torch.randn(2, 2, generator=g) + 0.3 * torch.randn(40, 2, generator=g) for _ in range(3)]
    pairs = [DCCALoss()(hs[i], hs[j]).item() for i, j in itertools.combinations(range(3), 2)]
    assert DCCALoss()(*hs).item() == pytest.approx(sum(pairs) / 3, rel=1e-5)
    assert DCCALoss(pairs="sum")(*hs).item() == pytest.approx(sum(pairs), rel=1e-5)
    mask = torch.ones(40, 3, dtype=torch.bool)
    mask[:10, 2] = False
    garbage = hs[2].clone()
    garbage[:10] = float("nan")
    got = DCCALoss()(hs[0], hs[1], garbage, mask=mask).item()
    want = [pairs[0], DCCALoss()(hs[0][10:], hs[2][10:]).item(), DCCALoss()(hs[1][10:], hs[2][10:]).item()]
    assert got == pytest.approx(sum(want) / 3, rel=1e-5)
    mask[:38, 2] = False                                           # 2 joint samples ≤ k: those pairs are skipped
    assert DCCALoss()(hs[0], hs[1], garbage, mask=mask).item() == pytest.approx(pairs[0], rel=1e-5)


# ---------------------------------------------------------------------------- DDP
def _ddp_dcca():
    torch.manual_seed(0)
    encoders = torch.nn.ModuleList([torch.nn.Linear(5, 3), torch.nn.Linear(4, 3)])
    objective = DCCALoss(1e-4)

    def loss_fn(module, x1, x2):
        return objective(module[0](x1), module[1](x2))

    return encoders, loss_fn


def test_dcca_under_ddp_equals_one_process_on_the_global_batch():
    from ddp_helpers import assert_ddp_matches_single

    g = torch.Generator().manual_seed(3)
    x1 = torch.randn(16, 5, generator=g)
    x2 = x1[:, :4] + 0.5 * torch.randn(16, 4, generator=g)
    assert_ddp_matches_single(_ddp_dcca, [x1, x2])     # 8 samples per rank, global m = 16 > k = 3


# ---------------------------------------------------------------------------- the method
def test_dcca_method_codes_and_config():
    m = DCCA(DCCAConfig(out_dim=3, backbone=BackboneConfig(hidden=[8])), DataSpec([(6,), (5,)], ["a", "b"], 2)).eval()
    x = [torch.randn(5, 6), torch.randn(5, 5)]
    mask = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0]], dtype=torch.bool)
    codes = m.encode(x, mask)
    assert set(codes) == {"Z_0", "Z_1", "Z_cat"} and codes["Z_cat"].shape == (5, 6)
    assert (codes["Z_1"][~mask[:, 1]] == 0).all()
    raw = {"method": "dcca", "data": {"name": "synthetic"}}
    with pytest.raises(ConfigError, match=r"model\.top_k"):
        load_config(base=raw, overrides=["model.out_dim=4", "model.top_k=5"])
    with pytest.raises(ConfigError, match=r"model\.variant"):
        load_config(base=raw, overrides=["model.variant=nuclear"])


def test_dcca_learns_on_synthetic_data(tmp_path):
    from test_sdl import SYNTHETIC, epoch_rows, probe_and_kmeans

    from viewsplit.engine.run import train

    raw = {"method": "dcca", "data": SYNTHETIC,
           "model": {"out_dim": 4, "top_k": 3, "backbone": {"hidden": [32], "dropout": 0.2}},
           "stages": {"train": {"epochs": 8, "batch_size": 64}}, "train": {"progress": "never", "threads": 1}}
    run = train(load_config(base=raw), tmp_path / "run")
    rows = epoch_rows(tmp_path / "run")
    assert rows[-1]["correlation"] > rows[0]["correlation"] + 0.3
    acc, kmeans = probe_and_kmeans(run, "Z_cat")
    assert acc > 0.75 and kmeans > 0.6                             # chance: 0.25

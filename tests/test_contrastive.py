"""Cross-view nearest-neighbour InfoNCE (viewsplit/losses/contrastive.py): known answers, invariances, errors, and
2 gloo processes."""
import math

import pytest
import torch

from viewsplit.losses import neighbour_info_nce


def _by_hand(a: list[list[float]], b: list[list[float]], tau: float) -> float:
    """The module docstring's formula with Python floats: unit rows, each b-row's nearest other b-row, then
    the cross-entropy of picking row i's neighbour's b-code among every row's."""
    def unit(r):
        n = math.sqrt(sum(x * x for x in r))
        return [x / n for x in r]

    def dot(u, v):
        return sum(x * y for x, y in zip(u, v))
    a, b = [unit(r) for r in a], [unit(r) for r in b]
    n = len(a)
    nearest = [max((j for j in range(n) if j != i), key=lambda j: dot(b[i], b[j])) for i in range(n)]
    s = [[dot(a[i], b[nearest[j]]) / tau for j in range(n)] for i in range(n)]
    return sum(math.log(sum(math.exp(v) for v in s[i])) - s[i][i] for i in range(n)) / n


def test_closed_form_on_two_pairs_of_neighbours():
    """b: two tight pairs of rows, so each row's neighbour is its partner in the pair; a = b.  Row i's logits
    against the neighbour codes are (cos with its pair twice, cos with the other pair twice) / τ, so with the
    pairs orthogonal and exact duplicates L = log(2e^{1/τ} + 2) − 1/τ = log(2 + 2e^{−1/τ}) = 0.820075 at τ = 0.5:
    the loss cannot tell a sample from its duplicate, so it stays above log 2."""
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    expected = math.log(2 + 2 * math.exp(-2.0))
    assert neighbour_info_nce(b, b, 0.5).item() == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.820075, abs=1e-6)


def test_matches_the_formula_by_hand():
    a = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.3, -1.0, 2.0]]
    b = [[2.0, 0.0, 1.0], [0.0, 3.0, 0.5], [-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]]
    got = neighbour_info_nce(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), 0.3).item()
    assert got == pytest.approx(_by_hand(a, b, 0.3), abs=1e-12)


def test_invariances():
    """Positive row scales, one rotation applied to both codes, and a joint permutation of the samples leave the
    loss unchanged."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g, dtype=torch.float64)
    ref = neighbour_info_nce(a, b)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    perm = torch.randperm(12, generator=g)
    scale = torch.rand(12, 1, generator=g, dtype=torch.float64) + 0.1
    assert torch.allclose(neighbour_info_nce(a * scale, b / scale), ref)
    assert torch.allclose(neighbour_info_nce(a @ q, b @ q), ref)
    assert torch.allclose(neighbour_info_nce(a[perm], b[perm]), ref)


def test_clustered_codes_score_lower_than_unclustered_ones():
    """Codes in tight clusters (the neighbour's code is nearly the sample's own) score far below codes without
    cluster structure, where the neighbour is a random other sample (chance: log n)."""
    g = torch.Generator().manual_seed(1)
    centres = 3 * torch.randn(8, 16, generator=g)
    clustered = centres.repeat_interleave(8, 0) + 0.1 * torch.randn(64, 16, generator=g)
    noise = torch.randn(64, 16, generator=g)
    assert neighbour_info_nce(clustered, clustered) < math.log(64) - 1.0 < neighbour_info_nce(noise, noise)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="shape"):
        neighbour_info_nce(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="temperature"):
        neighbour_info_nce(torch.zeros(4, 3), torch.zeros(4, 3), 0.0)
    assert neighbour_info_nce(torch.ones(2, 3), torch.ones(2, 3)).item() == 0.0   # no neighbour and negative


def _ddp_loss():
    """Codes from two linear maps; only the samples flagged in the last input are paired (as in MRDD)."""
    torch.manual_seed(0)
    nets = torch.nn.ModuleList([torch.nn.Linear(5, 3), torch.nn.Linear(4, 3)])

    def loss_fn(module, x1, x2, keep):
        keep = keep.bool()
        return neighbour_info_nce(module[0](x1)[keep], module[1](x2)[keep], 0.5)

    return nets, loss_fn


def test_two_processes_match_one_process_on_the_global_batch():
    """Neighbours and negatives come from the global batch: uneven shards (8 and 7 rows, 5 and 5 of them
    paired) give the single-process loss and gradients."""
    from ddp_helpers import assert_ddp_matches_single

    g = torch.Generator().manual_seed(3)
    keep = torch.ones(15)
    keep[[1, 4, 9, 12, 13]] = 0
    assert_ddp_matches_single(_ddp_loss, [torch.randn(15, 5, generator=g), torch.randn(15, 4, generator=g), keep])

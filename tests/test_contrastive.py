"""Cross-view nearest-neighbour InfoNCE (viewsplit/losses/contrastive.py): known answers, invariances, errors, and
2 gloo processes."""
import math
from functools import partial

import pytest
import torch

from viewsplit.losses import input_keys, input_neighbour_contrast, neighbour_info_nce, pairwise_neighbour_info_nce


def _by_hand(a: list[list[float]], b: list[list[float]], tau: float, keys: list[list[float]] | None = None) -> float:
    """The module docstring's formula with Python floats: unit rows, each b-row's nearest other b-row (or the
    row with the largest key dot product), then the cross-entropy of picking row i's neighbour's b-code among
    every row's."""
    def unit(r):
        n = math.sqrt(sum(x * x for x in r))
        return [x / n for x in r]

    def dot(u, v):
        return sum(x * y for x, y in zip(u, v))
    a, b = [unit(r) for r in a], [unit(r) for r in b]
    k = b if keys is None else keys
    n = len(a)
    nearest = [max((j for j in range(n) if j != i), key=lambda j: dot(k[i], k[j])) for i in range(n)]
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


def test_keys_choose_the_neighbours():
    """With keys, n(i) is the row with the largest key dot product, the keys taken as given: row 3's key
    (1, 0.5) is closer in direction to row 0's (1, 0) but has the larger dot product with row 2's longer (0, 3),
    so n = (3, 2, 1, 2), where unit keys and the codes' own neighbours give (3, 2, 1, 0)."""
    a = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.3, -1.0, 2.0]]
    b = [[2.0, 0.0, 1.0], [0.0, 3.0, 0.5], [-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]]
    keys = [[1.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.5]]
    t = [torch.tensor(r, dtype=torch.float64) for r in (a, b, keys)]
    got = neighbour_info_nce(t[0], t[1], 0.3, keys=t[2]).item()
    assert got == pytest.approx(_by_hand(a, b, 0.3, keys), abs=1e-12)
    unit_keys = torch.nn.functional.normalize(t[2], dim=1)
    assert _by_hand(a, b, 0.3, unit_keys.tolist()) == pytest.approx(_by_hand(a, b, 0.3), abs=1e-12)
    assert got != pytest.approx(_by_hand(a, b, 0.3), abs=1e-3)


def test_own_positive_form_matches_the_formula_by_hand():
    """own_positive: logits âᵢ·b̂ⱼ / τ over the batch's own b-codes, half the cross-entropy of the sample's own
    column and half of its neighbour's (here the neighbours by the keys of the test above)."""
    a = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.3, -1.0, 2.0]]
    b = [[2.0, 0.0, 1.0], [0.0, 3.0, 0.5], [-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]]
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.5]], dtype=torch.float64)
    nearest, tau = [3, 2, 1, 2], 0.3

    def unit(r):
        n = math.sqrt(sum(x * x for x in r))
        return [x / n for x in r]
    ua, ub = [unit(r) for r in a], [unit(r) for r in b]
    s = [[sum(x * y for x, y in zip(ua[i], ub[j])) / tau for j in range(4)] for i in range(4)]
    lse = [math.log(sum(math.exp(v) for v in row)) for row in s]
    expected = sum(lse[i] - 0.5 * (s[i][i] + s[i][nearest[i]]) for i in range(4)) / 4
    got = neighbour_info_nce(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), tau,
                             keys=keys, own_positive=True).item()
    assert got == pytest.approx(expected, abs=1e-12)


def test_input_keys_sum_the_cosines_over_shared_views():
    """k_i·k_j = Σ_v m_iv m_jv cos(x_iv, x_jv): with two views, samples 0 and 1 share both (cosines 1 and 0),
    sample 2 has view 0 only (cosine −1 with sample 0's), and image views are flattened."""
    x0 = torch.tensor([[1.0, 0.0], [3.0, 0.0], [-2.0, 0.0]])
    x1 = torch.tensor([[[0.0, 2.0]], [[5.0, 0.0]], [[9.0, 9.0]]])
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    k = input_keys([x0, x1], mask)
    assert torch.allclose(k @ k.T, torch.tensor([[2.0, 1.0, -1.0], [1.0, 2.0, -1.0], [-1.0, -1.0, 1.0]]))


def test_pairwise_form_averages_the_view_pairs_on_their_shared_samples():
    """Three views: the mean of the three pairs' losses, each on the rows that have both views, with the keys
    restricted to those rows; two complete views give the plain loss; one view gives 0."""
    g = torch.Generator().manual_seed(5)
    zs = [torch.randn(9, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    keys = torch.randn(9, 6, generator=g, dtype=torch.float64)
    mask = torch.ones(9, 3, dtype=torch.bool)
    mask[[0, 3], 0] = False
    mask[[5], 2] = False
    expected = 0.0
    for v, w in ((0, 1), (0, 2), (1, 2)):
        both = mask[:, v] & mask[:, w]
        expected += neighbour_info_nce(zs[v][both], zs[w][both], 0.4, keys[both], True).item() / 3
    assert pairwise_neighbour_info_nce(zs, mask, 0.4, keys, True).item() == pytest.approx(expected, abs=1e-12)
    full = torch.ones(9, 2, dtype=torch.bool)
    assert pairwise_neighbour_info_nce(zs[:2], full, 0.4).item() == pytest.approx(
        neighbour_info_nce(zs[0], zs[1], 0.4).item(), abs=1e-12)
    assert pairwise_neighbour_info_nce(zs[:1], full[:, :1]).item() == 0.0
    views = [torch.randn(9, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    assert input_neighbour_contrast(zs, views, mask, 0.4).item() == pytest.approx(       # the methods' contrast term
        pairwise_neighbour_info_nce(zs, mask, 0.4, input_keys(views, mask), own_positive=True).item(), abs=1e-12)


@pytest.mark.parametrize("form", ["code", "keys", "keys_own"])
def test_invariances(form):
    """Positive row scales, one rotation applied to both codes, and a joint permutation of the samples (and of
    their keys) leave the loss unchanged, in each form."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randn(12, 5, generator=g, dtype=torch.float64)
    keys = torch.randn(12, 7, generator=g, dtype=torch.float64) if form != "code" else None

    def loss(a, b, keys=keys):
        return neighbour_info_nce(a, b, keys=keys, own_positive=form == "keys_own")
    ref = loss(a, b)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    perm = torch.randperm(12, generator=g)
    scale = torch.rand(12, 1, generator=g, dtype=torch.float64) + 0.1
    assert torch.allclose(loss(a * scale, b / scale), ref)
    assert torch.allclose(loss(a @ q, b @ q), ref)
    assert torch.allclose(loss(a[perm], b[perm], None if keys is None else keys[perm]), ref)


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
    with pytest.raises(ValueError, match="keys has 3 rows"):
        neighbour_info_nce(torch.zeros(4, 3), torch.zeros(4, 3), keys=torch.zeros(3, 2))
    assert neighbour_info_nce(torch.ones(2, 3), torch.ones(2, 3)).item() == 0.0   # no neighbour and negative


def _ddp_loss(form: str):
    """Codes from two linear maps; only the samples flagged in the last input are paired (as in MRDD); ``keyed``:
    the neighbours are chosen by the first view's input, in the two-positive form (MRDD's preset); ``pairwise``:
    the same through :func:`pairwise_neighbour_info_nce` with the flags as the second view's mask (Soft CCA's)."""
    torch.manual_seed(0)
    nets = torch.nn.ModuleList([torch.nn.Linear(5, 3), torch.nn.Linear(4, 3)])

    def loss_fn(module, x1, x2, keep):
        keep = keep.bool()
        if form == "pairwise":
            mask = torch.stack([torch.ones_like(keep), keep], 1)
            return pairwise_neighbour_info_nce([module[0](x1), module[1](x2)], mask, 0.5, x1, own_positive=True)
        return neighbour_info_nce(module[0](x1)[keep], module[1](x2)[keep], 0.5, x1[keep] if form == "keyed" else None,
                                  own_positive=form == "keyed")

    return nets, loss_fn


@pytest.mark.parametrize("form", ["code", "keyed", "pairwise"])
def test_two_processes_match_one_process_on_the_global_batch(form):
    """Neighbours (by the codes or by keys) and negatives come from the global batch: uneven shards (8 and 7
    rows, 5 and 5 of them paired) give the single-process loss and gradients."""
    from ddp_helpers import assert_ddp_matches_single

    g = torch.Generator().manual_seed(3)
    keep = torch.ones(15)
    keep[[1, 4, 9, 12, 13]] = 0
    assert_ddp_matches_single(partial(_ddp_loss, form),
                              [torch.randn(15, 5, generator=g), torch.randn(15, 4, generator=g), keep])

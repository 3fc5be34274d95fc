"""The multi-view data set type: validation errors, batching, masks and splits."""
import numpy as np
import pytest
import torch

from viewsplit.data import DataError, MultiViewDataset, check_batch_mask, incomplete_mask, make_incomplete
from viewsplit.data.multiview import reference_split, stratified_split


def two_views(n=6):
    return [torch.randn(n, 3), torch.randn(n, 1, 4, 4)]


def test_valid_dataset_facts():
    ds = MultiViewDataset(two_views(), torch.arange(6) % 3, ["a", "b"])
    assert len(ds) == 6 and ds.n_views == 2 and ds.view_shapes == [(3,), (1, 4, 4)] and ds.n_classes == 3
    assert ds.mask.all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(views=[torch.randn(5, 3), torch.randn(6, 3)]), r"view 1 \('view1'\): has 6 samples but view 0"),
        (dict(views=[torch.randn(4, 3), torch.tensor([[1.0], [float("nan")], [0.0], [0.0]])]),
         r"view 1 .*NaN or Inf.*\[1\]"),
        (dict(views=[torch.randn(4, 3), torch.randn(4, 3).double()]), r"view 1 .*dtype must be float32"),
        (dict(views=[torch.randn(4, 3), torch.randn(4, 3, 2)]), r"view 1 .*expected shape \(N, D\)"),
        (dict(views=[torch.randn(0, 3), torch.randn(0, 3)]), r"view 0 .*empty view"),
        (dict(views=[torch.randn(4, 3)]), r"at least 2 views, got 1"),
        (dict(views=[torch.randn(4, 3), torch.randn(4, 2)], labels=torch.arange(3)), r"3 labels for 4 samples"),
        (dict(views=[torch.randn(4, 3), torch.randn(4, 2)], labels=torch.arange(4).float()),
         r"labels must be a 1-d int64"),
        (dict(views=[torch.randn(4, 3), torch.randn(4, 2)], mask=torch.tensor([[1, 1], [0, 0], [1, 0], [0, 1]]).bool()),
         r"mask rows with no view present.*\[1\]"),
        (dict(views=[torch.randn(4, 3), torch.randn(4, 2)], mask=torch.ones(4, 3, dtype=torch.bool)),
         r"mask must be a bool tensor of shape \(4, 2\)"),
        (dict(views=[torch.randn(4, 3), np.zeros((4, 2), np.float32)]), r"view 1 .*expected a torch.Tensor"),
        (dict(views=[torch.randn(4, 3), torch.randn(4, 2)], view_names=["only-one"]), r"1 view names for 2 views"),
    ],
)
def test_validation_errors_name_the_culprit(kwargs, match):
    with pytest.raises(DataError, match=match):
        MultiViewDataset(name="toy", **kwargs)


def test_batches_cover_epoch_without_per_sample_work():
    ds = MultiViewDataset([torch.arange(10.0)[:, None], torch.arange(10.0)[:, None] * 2], torch.arange(10))
    seen = torch.cat([b.index for b in ds.batches(3, shuffle=True, seed=1, epoch=0)])
    assert sorted(seen.tolist()) == list(range(10))
    b = next(ds.batches(4, shuffle=True, seed=1, epoch=0))
    assert torch.equal(b.views[1][:, 0], 2 * b.views[0][:, 0]) and torch.equal(b.labels, b.index)
    # same (seed, epoch) → same order; another epoch → another order
    def order(e: int) -> torch.Tensor:
        return torch.cat([b.index for b in ds.batches(3, shuffle=True, seed=1, epoch=e)])

    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    assert len(list(ds.batches(3, drop_last=True))) == 3
    # resuming mid-epoch skips the first batches
    resumed = torch.cat([b.index for b in ds.batches(3, shuffle=True, seed=1, epoch=2, start=2)])
    assert torch.equal(resumed, order(2)[6:])


def test_rank_shards_are_disjoint_and_cover_the_epoch():
    ds = MultiViewDataset([torch.randn(10, 2), torch.randn(10, 2)])
    shards = [torch.cat([b.index for b in ds.batches(5, shuffle=True, epoch=3, rank=r, world_size=2)]) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert sorted(torch.cat(shards).tolist()) == list(range(10))


def test_uint8_images_are_batched_as_floats_in_unit_range():
    img = torch.full((2, 1, 2, 2), 255, dtype=torch.uint8)
    ds = MultiViewDataset([img, torch.zeros(2, 3)])
    b = next(ds.batches(2))
    assert b.views[0].dtype == torch.float32 and b.views[0].max() == 1.0


@pytest.mark.parametrize("n, v, rate, seed, rows", [
    (10, 2, 0.5, 1, [[1, 0], [1, 1], [0, 1], [1, 0], [1, 1], [1, 1], [1, 0], [1, 1], [0, 1], [1, 1]]),
    (10, 3, 0.5, 0, [[1, 1, 1], [1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1], [1, 1, 1], [0, 0, 1],
                     [1, 1, 1], [1, 1, 1]]),
    (8, 3, 1.0, 1, [[0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 1, 1], [1, 0, 1]]),
])
def test_incomplete_mask_exact_vectors(n, v, rate, seed, rows):
    assert incomplete_mask(n, v, rate, seed).int().tolist() == rows


def test_incomplete_mask_properties():
    m = incomplete_mask(1000, 4, 0.3, 7)
    assert m.any(1).all() and int((~m.all(1)).sum()) == 300
    assert incomplete_mask(50, 3, 0.0, 0).all()
    assert (incomplete_mask(40, 2, 1.0, 3).sum(1) == 1).all()
    assert torch.equal(incomplete_mask(99, 3, 0.5, 5), incomplete_mask(99, 3, 0.5, 5))
    ds = make_incomplete(MultiViewDataset([torch.randn(20, 2), torch.randn(20, 2)]), 0.5, 0)
    assert int((~ds.mask.all(1)).sum()) == 10
    with pytest.raises(DataError, match="missing_rate"):
        incomplete_mask(10, 2, 1.5, 0)


def test_check_batch_mask_rejects_empty_rows():
    with pytest.raises(DataError, match="no view present"):
        check_batch_mask(torch.tensor([[True, False], [False, False]]))


def test_splits():
    y = np.repeat(np.arange(4), 25)
    tr, te = stratified_split(y, 0.2, 0)
    assert len(te) == 20 and np.bincount(y[te]).tolist() == [5] * 4 and not set(tr) & set(te)
    assert np.array_equal(stratified_split(y, 0.2, 0)[1], te)
    tr, te = reference_split(480)
    assert len(te) == 96 and te[:5].tolist() == [73, 414, 394, 277, 399] and tr[:5].tolist() == [132, 228, 473, 42, 360]

"""MIB's two-augmentation data set (docs/datasets.md#mib-augmentation-pairs): disabled augmentation, corruption
rate, independence, reproducibility per (seed, epoch, index, view) whatever the batch, un-augmented evaluation,
the loader."""
import pytest
import torch

from viewsplit.config import load_config
from viewsplit.data import DataConfig, load_dataset
from viewsplit.data.augment import AugmentConfig
from viewsplit.data.augpairs import AugmentedPairs, augment_images, hash_uniform
from viewsplit.errors import ConfigError, DataError

OFF = AugmentConfig(degrees=0, translate=0, scale_min=1, scale_max=1, shear=0, corruption=0)


def images(n: int, size: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, size, size, generator=g) * 255).to(torch.uint8)


def pairs(n: int = 40, augment: AugmentConfig | None = None) -> AugmentedPairs:
    x = images(n)
    return AugmentedPairs([x, x], torch.arange(n) % 10, ["a", "b"], augment=augment or AugmentConfig())


def gather_views(ds: AugmentedPairs, **kw) -> list[torch.Tensor]:
    """Every sample's two views from one pass, put back in data-set order."""
    out = [torch.empty(len(ds), *ds.view_shapes[v]) for v in range(2)]
    for b in ds.batches(**kw):
        for v in range(2):
            out[v][b.index] = b.views[v]
    return out


def test_disabled_augmentation_gives_the_original_in_both_views():
    ds = pairs(augment=OFF)
    original = ds.views[0].float() / 255
    a, b = gather_views(ds, batch_size=16, shuffle=True, seed=3, epoch=5)
    assert torch.equal(a, original) and torch.equal(b, original)


def test_corruption_only_zeroes_a_fifth_of_the_pixels():
    cfg = AugmentConfig(degrees=0, translate=0, scale_min=1, scale_max=1, shear=0, corruption=0.2)
    out = augment_images(torch.ones(10_000, 1, 28, 28), torch.arange(10_000), 0, 0, 0, cfg)
    assert (out == 0).float().mean().item() == pytest.approx(0.2, abs=0.005)
    rgb = augment_images(torch.ones(50, 3, 8, 8), torch.arange(50), 0, 0, 0, cfg)
    assert ((rgb == 0).all(1) | (rgb == 1).all(1)).all()                # one mask for all channels


def test_views_differ_and_are_redrawn_every_epoch():
    ds = pairs()
    a0, b0 = gather_views(ds, batch_size=16, shuffle=True, seed=0, epoch=0)
    a1, _ = gather_views(ds, batch_size=16, shuffle=True, seed=0, epoch=1)
    assert all(not torch.equal(a0[i], b0[i]) for i in range(len(ds)))
    assert all(not torch.equal(a0[i], a1[i]) for i in range(len(ds)))
    a2, _ = gather_views(ds, batch_size=16, shuffle=True, seed=1, epoch=0)
    assert not torch.equal(a0, a2)


def test_same_key_same_view_whatever_the_batch():
    ds = pairs(60)
    ref = gather_views(ds, batch_size=60, shuffle=True, seed=2, epoch=4)
    for kw in ({"batch_size": 7}, {"batch_size": 1}, {"batch_size": 13, "rank": 1, "world_size": 2},
               {"batch_size": 13, "rank": 0, "world_size": 2}):
        for b in ds.batches(shuffle=True, seed=2, epoch=4, **kw):
            for v in range(2):
                assert torch.equal(b.views[v], ref[v][b.index])
    # directly, in another order and batch composition
    x = ds.views[0].float() / 255
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))[:25]
    assert torch.equal(augment_images(x[perm], perm, 2, 4, 1, ds.augment), ref[1][perm])
    assert torch.equal(hash_uniform(2, 4, perm, 1, 0, 5), hash_uniform(2, 4, torch.arange(60), 1, 0, 5)[perm])


def test_affine_parameters_follow_random_affine():
    """A translation-only augmentation moves a single bright pixel by whole pixels within ±round(0.1·size)."""
    cfg = AugmentConfig(degrees=0, translate=0.1, scale_min=1, scale_max=1, shear=0, corruption=0)
    x = torch.zeros(500, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0
    out = augment_images(x, torch.arange(500), 0, 0, 0, cfg)
    assert ((out == 1).sum((1, 2, 3)) == 1).all()
    pos = (out[:, 0] == 1).nonzero()[:, 1:] - 14
    assert pos.abs().max() == 3 and len({tuple(p) for p in pos.tolist()}) > 30
    u = hash_uniform(0, 0, torch.arange(20_000), 0, 0, 5)
    assert u.min() >= 0 and u.max() < 1 and u.mean().item() == pytest.approx(0.5, abs=0.01)


def test_ordered_passes_and_subsets_are_unaugmented_and_keep_the_type():
    ds = pairs()
    original = ds.views[0].float() / 255
    a, b = gather_views(ds, batch_size=16)                                      # evaluation-style pass
    assert torch.equal(a, original) and torch.equal(b, original)
    a, _ = gather_views(ds, batch_size=16, augment=True)
    assert not torch.equal(a, original)
    sub = ds.subset([3, 1, 7])
    assert isinstance(sub, AugmentedPairs) and sub.augment == ds.augment and len(sub) == 3
    assert torch.equal(sub.views[0], ds.views[0][[3, 1, 7]])
    masked = ds.with_mask(torch.ones(len(ds), 2, dtype=torch.bool))
    assert isinstance(masked, AugmentedPairs)


def test_loader_from_an_idx_folder(tmp_path):
    from helpers import write_mnist_like

    write_mnist_like(tmp_path / "idx", n_train=30, n_test=10)
    cfg = DataConfig(name="augpairs", source="edge_mnist", source_view=0, root=str(tmp_path / "idx"),
                     augment={"corruption": 0.5}, train_limit=20)
    splits = load_dataset(cfg)
    assert isinstance(splits.train, AugmentedPairs) and len(splits.train) == 20
    assert splits.train.augment.corruption == 0.5 and splits.train.augment.degrees == 15
    assert splits.train.view_shapes == [(1, 32, 32), (1, 32, 32)] and splits.train.n_classes == 10
    test = splits.test
    assert not isinstance(test, AugmentedPairs) and torch.equal(test.views[0], test.views[1])
    assert splits.info["augpairs"]["source"] == "edge_mnist"
    run_cfg = load_config(base={"method": "mib", "data": {"name": "augpairs", "source": "edge_mnist",
                                                          "root": str(tmp_path / "idx")}})
    assert run_cfg.data.source == "edge_mnist"
    with pytest.raises(ConfigError, match=r"data\.source"):
        load_dataset(DataConfig(name="augpairs"))
    with pytest.raises(ConfigError, match=r"data\.source"):
        load_dataset(DataConfig(name="augpairs", source="augpairs"))
    with pytest.raises(ConfigError, match=r"data\.source_view"):
        load_dataset(DataConfig(name="augpairs", source="edge_mnist", source_view=2, root=str(tmp_path / "idx")))
    with pytest.raises(ConfigError, match=r"data\.augment"):
        load_dataset(DataConfig(name="augpairs", source="edge_mnist", augment={"noise_std": 1.0},
                                root=str(tmp_path / "idx")))
    with pytest.raises(DataError, match="image view"):
        load_dataset(DataConfig(name="augpairs", source="synthetic", n_samples=50))

"""A synthetic multi-view generator with known shared and view-specific factors.

Each sample has shared factors ``s ∈ R^{k_s}`` (class centre + unit noise, so the class lives
only in ``s``) and, per view, specific factors ``p_v ~ N(0, I_{k_p})`` independent of
everything else.  View ``v`` is a fixed random two-layer tanh network applied to
``[s ; p_v]`` plus Gaussian noise.  A good disentangling method puts ``s`` in its consistent
code and ``p_v`` in view ``v``'s specific code.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .multiview import DataSplits, MultiViewDataset, stratified_split
from .registry import DataConfig, always_found, register


@dataclass
class SyntheticFactors:
    views: list[np.ndarray]
    labels: np.ndarray
    shared: np.ndarray
    specific: list[np.ndarray]


def generate(n_samples: int = 2000, n_views: int = 3, n_classes: int = 4, shared_dim: int = 4,
             specific_dim: int = 4, view_dim: int = 32, noise: float = 0.05, seed: int = 0,
             hidden: int = 64, separation: float = 3.0) -> SyntheticFactors:
    """Draw the views together with the factors that generated them (all float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, separation, size=(n_classes, shared_dim))
    labels = np.arange(n_samples) % n_classes
    rng.shuffle(labels)
    shared = centres[labels] + rng.normal(size=(n_samples, shared_dim))
    specific, views = [], []
    for _ in range(n_views):
        p = rng.normal(size=(n_samples, specific_dim))
        z = np.concatenate([shared / np.sqrt(1.0 + separation**2), p], axis=1)
        w1 = rng.normal(size=(z.shape[1], hidden)) / np.sqrt(z.shape[1])
        w2 = rng.normal(size=(hidden, view_dim)) / np.sqrt(hidden)
        x = np.tanh(np.tanh(z @ w1 * 1.5) @ w2 * 1.5) + noise * rng.normal(size=(n_samples, view_dim))
        specific.append(p.astype(np.float32))
        views.append(x.astype(np.float32))
    return SyntheticFactors(views, labels.astype(np.int64), shared.astype(np.float32), specific)


def generate_from_config(cfg: DataConfig) -> SyntheticFactors:
    return generate(cfg.n_samples, cfg.n_views, cfg.n_classes, cfg.shared_dim, cfg.specific_dim,
                    cfg.view_dim, cfg.noise, cfg.seed)


@register("synthetic", "generated views with known shared and view-specific factors",
          "data.n_views views of data.view_dim features; data.n_samples samples; data.n_classes classes",
          always_found("generated on the fly"))
def load_synthetic(cfg: DataConfig) -> DataSplits:
    f = generate_from_config(cfg)
    ds = MultiViewDataset([torch.from_numpy(x) for x in f.views], torch.from_numpy(f.labels),
                          [f"view{v}" for v in range(cfg.n_views)], name="synthetic")
    tr, te = stratified_split(f.labels, cfg.test_fraction, cfg.seed)
    info = {"split": "stratified", "split_seed": cfg.seed, "generator_seed": cfg.seed}
    return DataSplits(ds.subset(tr), ds.subset(te), cluster_on="test", info=info)

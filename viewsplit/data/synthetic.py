"""A synthetic multi-view generator with known factors (docs/evaluation.md#factor-recovery).

Each sample has a class ``y`` (embedded as ``e(y) ∈ R^{class_dim}``, a fixed random table),
shared continuous factors ``s ~ N(0, I_{shared_dim})`` independent of the class, and per view
private factors ``u_v ~ N(0, I_{specific_dim})`` independent of everything else.  View ``v`` is a
fixed random two-layer tanh network of its own applied to ``[e(y); s; u_v]`` plus Gaussian noise::

    x_v = tanh(g · W2_v tanh(g · W1_v [e(y); s; u_v])) + noise · ε

so "shared by all views" (y, s) and "private to one view" (u_v) differ whenever there are ≥ 3
views.  A good disentangling method puts y and s in its consistent code and u_v in view v's
specific code, and nothing of y or s in the specific codes.
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

    def factors(self) -> dict[str, torch.Tensor]:
        """The factors as a :class:`MultiViewDataset` carries them: ``shared`` and ``view<v>``."""
        return {"shared": torch.from_numpy(self.shared),
                **{f"view{v}": torch.from_numpy(p) for v, p in enumerate(self.specific)}}


def generate(n_samples: int = 2000, n_views: int = 3, n_classes: int = 4, shared_dim: int = 2,
             specific_dim: int = 3, view_dim: int = 32, noise: float = 0.05, seed: int = 0,
             hidden: int = 64, class_dim: int = 4, gain: float = 1.5) -> SyntheticFactors:
    """Draw the views together with the factors that generated them (all float32).

    ``gain`` sets how nonlinear the mixing is (the tanh networks are close to linear for small gains).
    """
    rng = np.random.default_rng(seed)
    embedding = rng.normal(size=(n_classes, class_dim))
    labels = np.arange(n_samples) % n_classes
    rng.shuffle(labels)
    shared = rng.normal(size=(n_samples, shared_dim))
    specific, views = [], []
    for _ in range(n_views):
        p = rng.normal(size=(n_samples, specific_dim))
        z = np.concatenate([embedding[labels], shared, p], axis=1)
        w1 = rng.normal(size=(z.shape[1], hidden)) / np.sqrt(z.shape[1])
        w2 = rng.normal(size=(hidden, view_dim)) / np.sqrt(hidden)
        x = np.tanh(np.tanh(z @ w1 * gain) @ w2 * gain) + noise * rng.normal(size=(n_samples, view_dim))
        specific.append(p.astype(np.float32))
        views.append(x.astype(np.float32))
    return SyntheticFactors(views, labels.astype(np.int64), shared.astype(np.float32), specific)


def generate_from_config(cfg: DataConfig) -> SyntheticFactors:
    return generate(cfg.n_samples, cfg.n_views, cfg.n_classes, cfg.shared_dim, cfg.specific_dim,
                    cfg.view_dim, cfg.noise, cfg.seed, cfg.mixing_hidden, cfg.class_dim, cfg.mixing_gain)


@register("synthetic", "generated views with known class, shared and view-private factors",
          "data.n_views views of data.view_dim features; data.n_samples samples; data.n_classes classes",
          always_found("generated on the fly"))
def load_synthetic(cfg: DataConfig) -> DataSplits:
    f = generate_from_config(cfg)
    ds = MultiViewDataset([torch.from_numpy(x) for x in f.views], torch.from_numpy(f.labels),
                          [f"view{v}" for v in range(cfg.n_views)], name="synthetic", factors=f.factors())
    tr, te = stratified_split(f.labels, cfg.test_fraction, cfg.seed)
    info = {"split": "stratified", "split_seed": cfg.seed, "generator_seed": cfg.seed}
    return DataSplits(ds.subset(tr), ds.subset(te), cluster_on="test", info=info)

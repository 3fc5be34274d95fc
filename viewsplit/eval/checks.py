"""Checks that an evaluation can run on a data set, made before training so that nothing fails after it."""
from __future__ import annotations

import numpy as np
import torch

from ..config import EvalConfig
from ..data.multiview import DataSplits
from ..errors import ConfigError, DataError
from ..methods.base import Method
from .evaluate import compose, extract, select


def check_evaluable(method: Method, splits: DataSplits, cfg: EvalConfig, device: torch.device | str = "cpu") -> None:
    """Raise a :class:`ConfigError` or :class:`DataError` naming the setting or labels that would make the
    evaluation fail: ``eval.best_view``, ``eval.representations``, ``eval.knn_k``, and labels that clustering
    and probes cannot use (none, unlabelled samples, a single class, more classes than samples).

    Representation names come from encoding two test samples with the (possibly untrained) model.
    """
    few = splits.test.subset(np.arange(min(2, len(splits.test))))
    select(compose(extract(method, few, cfg.batch_size, device), splits.train.n_views, cfg.best_view),
           cfg.representations)
    def used(n: int) -> int:   # samples a split contributes (eval.max_samples)
        return min(n, cfg.max_samples) if cfg.max_samples else n

    if "knn" in cfg.probes and cfg.knn_k > used(len(splits.train)):
        raise ConfigError(f"eval.knn_k: {cfg.knn_k} neighbours, but the train split has only {used(len(splits.train))} "
                          "samples (eval.max_samples)")
    if not cfg.probes and not cfg.kmeans_seeds:
        return
    fix = "evaluation (clustering and probes) needs labelled samples; `viewsplit train` trains without them"
    for split, ds in (("train", splits.train), ("test", splits.test)):
        if ds.labels is None:
            raise DataError(f"data set {ds.name!r} has no labels: {fix}")
        unknown = int((ds.labels < 0).sum())
        if unknown:
            raise DataError(f"data set {ds.name!r}: {unknown} of the {len(ds)} {split} samples are unlabelled "
                            f"(label -1): {fix}")
    y_train, y_all = splits.train.labels, torch.cat([splits.train.labels, splits.test.labels])
    for y, what in ((y_train, "train split"), (y_all, "data set")):
        classes = torch.unique(y).tolist()
        if len(classes) < 2:
            raise DataError(f"data set {splits.train.name!r}: every label of the {what} is class {classes[0]}; "
                            "clustering and probes need at least 2 classes")
    clustered = used(len(splits.test)) + (used(len(splits.train)) if splits.cluster_on == "all" else 0)
    k = int(y_all.max()) + 1
    if cfg.kmeans_seeds and k > clustered:
        raise DataError(f"data set {splits.train.name!r}: {k} classes but only {clustered} samples to "
                        "cluster; k-means needs at least one sample per cluster")

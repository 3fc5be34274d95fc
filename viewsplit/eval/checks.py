"""Checks that an evaluation can run on a data set, made before training so that nothing fails after it."""
from __future__ import annotations

import numpy as np
import torch

from ..config import EvalConfig
from ..data.multiview import DataSplits
from ..errors import ConfigError, DataError
from ..methods.base import Method
from .evaluate import cap_splits, compose, extract, select
from .labels import any_labelled, known


def check_evaluable(method: Method, splits: DataSplits, cfg: EvalConfig, device: torch.device | str = "cpu") -> None:
    """Raise a :class:`ConfigError` or :class:`DataError` naming the setting or labels that would make the
    evaluation fail: ``eval.best_view``, ``eval.representations``, ``eval.knn_k``, and labels that clustering
    and probes cannot use (a single class, no labelled train or test sample for the probes, more classes
    than samples to cluster).  They use the labelled samples only; a data set without any label passes,
    and its report leaves them out.

    Representation names come from encoding two test samples with the (possibly untrained) model.
    """
    few = splits.test.subset(np.arange(min(2, len(splits.test))))
    select(compose(extract(method, few, cfg.batch_size, device), splits.train.n_views, cfg.best_view),
           cfg.representations)
    n = len(splits.train), len(splits.test)
    splits, _ = cap_splits(splits, cfg.max_samples)   # the checks see the samples the evaluation will
    cut = " (of those eval.max_samples keeps)" if (len(splits.train), len(splits.test)) != n else ""
    y_tr, y_te = known(splits.train), known(splits.test)
    y_tr, y_te = y_tr[y_tr >= 0], y_te[y_te >= 0]
    name = splits.train.name
    if "knn" in cfg.probes and 0 < y_tr.size < cfg.knn_k:
        raise ConfigError(f"eval.knn_k: {cfg.knn_k} neighbours, but the train split has only {y_tr.size} labelled "
                          f"samples{cut}")
    if not any_labelled(splits) or (not cfg.probes and not cfg.kmeans_seeds):
        return
    skip = "label some of them, or leave this part out with"
    if cfg.probes:
        for y, split in ((y_tr, "train"), (y_te, "test")):
            if not y.size:
                raise DataError(f"data set {name!r}: none of the {split} samples{cut} is labelled, so the probes "
                                f"cannot be {'fitted' if split == 'train' else 'scored'}; {skip} eval.probes=[]")
    clustered = np.concatenate([y_tr, y_te]) if splits.cluster_on == "all" else y_te
    if cfg.kmeans_seeds and not clustered.size:
        raise DataError(f"data set {name!r}: none of the test samples{cut} is labelled, so k-means cannot be scored; "
                        f"{skip} eval.kmeans_seeds=0")
    for y, what in ((y_tr, "train split"), (np.concatenate([y_tr, y_te]), "data set")):
        classes = np.unique(y).tolist()
        if len(classes) == 1:
            raise DataError(f"data set {name!r}: every label of the {what} is class {classes[0]}; "
                            "clustering and probes need at least 2 classes")
    k = int(max(y_tr.max(initial=0), y_te.max(initial=0))) + 1
    if cfg.kmeans_seeds and k > clustered.size:
        raise DataError(f"data set {name!r}: {k} classes but only {clustered.size} labelled samples{cut} to "
                        "cluster; k-means needs at least one sample per cluster")

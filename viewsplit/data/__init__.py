"""Data layer: the multi-view data set type, validation, masks and the built-in loaders."""
from ..errors import DataError
from . import (  # noqa: F401  (register loaders)
    augpairs,
    edge_mnist,
    handwritten,
    imagefolder,
    images,
    ondisk,
    synthetic,
    user,
)
from .multiview import (
    Batch,
    DataSplits,
    MultiViewDataset,
    check_batch_mask,
    incomplete_mask,
    make_incomplete,
    stratified_split,
)
from .registry import DATASETS, DataConfig, load_dataset

__all__ = [
    "DATASETS", "Batch", "DataConfig", "DataError", "DataSplits", "MultiViewDataset", "check_batch_mask",
    "incomplete_mask", "load_dataset", "make_incomplete", "stratified_split",
]

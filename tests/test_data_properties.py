"""Property-based tests of the data layer: whatever arrays, shapes, dtypes, values or indices a user passes,
the data layer either accepts them and gives them back unchanged, or raises viewsplit's own DataError."""
import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from viewsplit.data import DataConfig, MultiViewDataset, load_dataset
from viewsplit.errors import ViewsplitError

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DTYPES = st.sampled_from([np.float32, np.float64, np.int64, np.int8, np.uint8, np.bool_, np.complex64, "U3"])
SPECIAL = st.sampled_from([0.0, 1.0, -2.5, np.nan, np.inf, -np.inf, 1e30, -1e20, 3e15])


@st.composite
def view_arrays(draw, n: int) -> np.ndarray:
    """A view of n samples: usually a valid one (vector or image, float, int or uint8 images, moderate values),
    otherwise anything: wrong sample count, rank or width, odd dtypes, NaN, Inf and huge values."""
    if draw(st.integers(0, 9)) < 7:
        shape = draw(st.sampled_from([(n, draw(st.integers(1, 4))), (n, 1, 2, 2)]))
        dtype = draw(st.sampled_from([np.float32, np.float64, np.int16] + ([np.uint8] if len(shape) == 4 else [])))
        elements = st.floats(-1e6, 1e6, width=32) if np.dtype(dtype).kind == "f" else None
        return draw(hnp.arrays(dtype, shape, elements=elements))
    rows = draw(st.sampled_from([n, n, n + 1, 0]))
    shape = draw(st.sampled_from([(rows, draw(st.integers(0, 3))), (rows, 1, 2, 2), (rows,), (rows, 2, 2)]))
    dtype = draw(DTYPES)
    if np.dtype(dtype).kind == "f":
        return draw(hnp.arrays(dtype, shape, elements=st.one_of(st.floats(-10, 10, width=32), SPECIAL)))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def index_pairs(draw, n: int):
    """None, a valid disjoint (train_index, test_index) pair, or arbitrary indices (out of range, repeated,
    overlapping, empty, floats)."""
    kind = draw(st.sampled_from(["none", "valid", "valid", "overlapping", "repeated", "any"]))
    if kind == "none":
        return None
    if kind != "any" and n >= 2:
        perm = np.asarray(draw(st.permutations(range(n))), dtype=np.int64)
        k = draw(st.integers(1, n - 1))
        train, test = perm[:k], perm[k:]
        if kind == "overlapping":
            test = np.append(test, train[0])
        if kind == "repeated":
            train = np.append(train, train[0])
        return train, test
    dtype = draw(st.sampled_from([np.int64, np.float64]))
    return tuple(draw(hnp.arrays(dtype, draw(st.integers(0, n + 2)), elements=st.integers(-1, n))) for _ in range(2))


@given(data=st.data())
@SETTINGS
def test_npz_files_load_or_raise_a_data_error(tmp_path, data):
    n = data.draw(st.integers(1, 12))
    arrays = {f"view{v}": data.draw(view_arrays(n)) for v in range(data.draw(st.sampled_from([2, 2, 3, 1])))}
    if data.draw(st.booleans()):
        arrays["labels"] = data.draw(hnp.arrays(data.draw(st.sampled_from([np.int64, np.float64])), n,
                                                elements=st.integers(-2 if data.draw(st.booleans()) else 0, 3)))
    indices = data.draw(index_pairs(n))
    if indices is not None:
        arrays.update(train_index=indices[0], test_index=indices[1])
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    try:
        splits = load_dataset(DataConfig(name="npz", path=str(path)))
    except ViewsplitError:
        return
    # accepted: every sample comes back unchanged (as float32; uint8 images as they are), each exactly once
    event("npz accepted")
    got = splits.all
    if "train_index" in arrays:
        chosen = np.concatenate([arrays["train_index"], arrays["test_index"]])
        assert len(set(chosen.tolist())) == len(chosen) == len(got)
    else:
        chosen = np.arange(len(arrays["view0"]))   # every view may have drawn n + 1 rows: that is valid data too
        assert len(got) == len(chosen)
    for v, x in enumerate(got.views):
        want = arrays[f"view{v}"][chosen]
        want = want if want.dtype == np.uint8 and want.ndim == 4 else want.astype(np.float32)
        assert x.dtype == torch.from_numpy(want).dtype
        assert np.array_equal(_sorted_rows(x.numpy()), _sorted_rows(want))
        assert np.isfinite(want.astype(np.float64)).all() and np.abs(want.astype(np.float64)).max() <= 1e15


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    """The samples of ``a`` in lexicographic order (compares data sets as multisets of samples)."""
    flat = a.reshape(len(a), -1)
    return flat[np.lexsort(flat.T[::-1])] if flat.shape[1] else flat


@st.composite
def tensors_or_lists(draw, n: int):
    """A view as a tensor of random dtype and shape, a numpy array, a (possibly ragged) nested list, or a scalar."""
    kind = draw(st.sampled_from(["float32"] * 8 + ["tensor", "numpy", "ragged", "scalar"]))
    if kind == "ragged":
        return [[0.0] * draw(st.integers(0, 3)) for _ in range(draw(st.integers(0, n)))]
    if kind == "scalar":
        return 1.0
    arr = draw(view_arrays(n))
    if kind == "numpy" or arr.dtype.kind in "Uc":
        return arr
    if kind == "float32" and arr.dtype.kind in "fi" and arr.dtype != np.uint8:
        arr = arr.astype(np.float32)
    return torch.from_numpy(arr.copy())


@given(data=st.data())
@SETTINGS
def test_datasets_from_python_objects_construct_or_raise_a_data_error(data):
    n = data.draw(st.integers(1, 6))
    views = [data.draw(tensors_or_lists(n)) for _ in range(data.draw(st.sampled_from([2, 2, 3, 0, 1])))]
    labels = data.draw(st.one_of(st.none(), st.just(list(range(n))),
                                 st.builds(torch.tensor, st.lists(st.integers(0, 3), min_size=n, max_size=n)),
                                 st.builds(torch.tensor, st.lists(st.integers(-2, 3), min_size=n - 1, max_size=n + 1))))
    mask = data.draw(st.one_of(
        st.none(), st.none(),
        st.builds(lambda b: torch.tensor(b).reshape(n, -1) if len(b) % n == 0 else torch.tensor(b),
                  st.lists(st.booleans(), min_size=n, max_size=3 * n))))
    try:
        ds = MultiViewDataset(views, labels, mask=mask)
    except ViewsplitError:
        return
    event("data set accepted")
    # accepted: the data set hands back the same values, in order, with a valid mask
    # every view has the data set's rows: the n drawn, or n + 1 when every view was drawn one row long
    # (the generator's wrong count, consistent across views and nothing else of length n: a valid set)
    n = len(ds)
    assert {len(x) for x in views} == {n} and ds.mask.shape == (n, len(views))
    batch = ds.batch(torch.arange(n))
    for v, x in enumerate(views):
        assert torch.equal(ds.subset(np.arange(n)).views[v], x)
        assert torch.equal(batch.views[v], x.float() / 255 if x.dtype == torch.uint8 else x)

import os
from pathlib import Path

import pytest
import torch

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep preprocessing caches out of the user's home directory and tests independent."""
    monkeypatch.setenv("VIEWSPLIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("VIEWSPLIT_DATA", raising=False)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


needs_fmnist = pytest.mark.skipif(not FMNIST_DIR.exists(),
                                  reason="apt-get install dataset-fashion-mnist to run the real-data tests")


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """:data:`helpers.TINY_FAE` as a YAML file (once per test module)."""
    import yaml
    from helpers import TINY_FAE

    path = tmp_path_factory.mktemp("cfg") / "fae.yaml"
    path.write_text(yaml.safe_dump(TINY_FAE))
    return path


@pytest.fixture(scope="module")
def finished(config, tmp_path_factory) -> Path:
    """A finished run of :func:`config` (2 epochs of 3 steps on 48 training samples, one thread, a checkpoint
    after every step), once per test module."""
    from viewsplit.config import load_config
    from viewsplit.engine.run import train

    run_dir = tmp_path_factory.mktemp("runs") / "done"
    torch.set_num_threads(1)
    train(load_config(config), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def fitted_mrdd():
    """:data:`helpers.SMALL_MRDD` fitted on :func:`helpers.two_views` (once per test module)."""
    from helpers import SMALL_MRDD, two_views

    from viewsplit.estimators import MRDD

    Xs, _ = two_views()
    return MRDD(**SMALL_MRDD).fit(Xs)

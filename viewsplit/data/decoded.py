"""Image files decoded when a batch needs them, for folder-based image sets (COIL, Office-31, imagefolder).

The eager path decodes every file once into a uint8 tensor held in memory (and cached).  With
``data.stream`` on, a view is a :class:`DecodedView` instead: it keeps only file paths, and a
batch decodes its own rows with the same :func:`decode` (PIL, antialiased resize to ``size``) and
the same per-sample transform, so a streamed batch equals the eager one exactly.  The views go
into an :class:`~viewsplit.data.ondisk.OnDiskDataset`, which decodes ``data.prefetch`` batches
ahead in its background thread (PIL and torch's resize release the GIL) and, under DDP, only the
rows of its own rank's shard.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError
from .image_ops import resize

#: a per-sample transform of a decoded image: ``transform(row, image)`` with the row of the full view
Transform = Callable[[int, Tensor], Tensor]


def require_eight_bit(path: Path, mode: str) -> None:
    """Refuse an image whose PIL mode stores more than 8 bits per band (``I;16`` 16-bit PNG depth maps, ``I``,
    ``F`` float TIFFs): converting it to 8 bits would clip every value above 255."""
    from PIL import ImageMode

    if ImageMode.getmode(mode).typestr[-2:] not in ("u1", "b1"):
        raise DataError(f"{path}: a {mode} image (more than 8 bits per channel); only 8-bit images are decoded: "
                        "scale it to 8 bits, or store the view as a float32 .npy array (data.name=folder)")


def decode(paths: Sequence[Path], channels: int, size: int) -> Tensor:
    """Decode 8-bit image files (:func:`require_eight_bit`) to a ``(N, channels, size, size)`` uint8 tensor
    (antialiased resize)."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError("decoding image files needs Pillow: pip install 'viewsplit[images]'") from None
    out = torch.empty(len(paths), channels, size, size, dtype=torch.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as im:
                require_eight_bit(p, im.mode)
                arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
        except OSError as err:
            raise DataError(f"{p}: cannot decode image ({err})") from None
        t = torch.from_numpy(arr.copy()).reshape(1, arr.shape[0], arr.shape[1], channels).permute(0, 3, 1, 2)
        out[i] = resize(t, size, antialias=True)[0]
    return out


class DecodedView:
    """An image view whose row ``r`` is file ``files[file_of[r]]`` decoded (then ``transform(r, ·)``), or zeros
    where ``file_of[r] = −1`` (a missing view: its mask entry is False), restricted to ``rows`` (all when None);
    indexed like a tensor (integer positions or a slice), it returns uint8 ``(B, C, size, size)``.

    Same interface as :class:`~viewsplit.data.ondisk.MappedView` (``shape``, ``dim``, ``take``,
    indexing, ``read_all``), so :class:`~viewsplit.data.ondisk.OnDiskDataset` batches it alike.
    """

    def __init__(self, files: Sequence[Path], file_of: np.ndarray, channels: int, size: int,
                 transform: Transform | None = None, rows: np.ndarray | None = None):
        self.files, self.file_of = list(files), np.asarray(file_of, dtype=np.int64)
        self.channels, self.size, self.transform, self.rows = channels, size, transform, rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.file_of) if self.rows is None else len(self.rows), self.channels, self.size, self.size)

    def dim(self) -> int:
        return 4

    def take(self, index: np.ndarray) -> DecodedView:
        """The view restricted to ``index`` (positions in this view)."""
        index = np.asarray(index, dtype=np.int64)
        return DecodedView(self.files, self.file_of, self.channels, self.size, self.transform,
                           index if self.rows is None else self.rows[index])

    def __getitem__(self, index: Tensor | np.ndarray | slice) -> Tensor:
        if isinstance(index, slice):
            index = np.arange(self.shape[0])[index]
        pos = np.asarray(index, dtype=np.int64).reshape(-1)
        rows = pos if self.rows is None else self.rows[pos]
        files = self.file_of[rows]
        have = files >= 0
        if have.all():
            out = decode([self.files[f] for f in files], self.channels, self.size)
        else:
            out = torch.zeros(len(rows), self.channels, self.size, self.size, dtype=torch.uint8)
            if have.any():
                out[torch.from_numpy(have)] = decode([self.files[f] for f in files[have]], self.channels, self.size)
        if self.transform is not None:
            for i, r in enumerate(rows.tolist()):
                if have[i]:
                    out[i] = self.transform(r, out[i])
        return out

    def read_all(self) -> Tensor:
        return self[np.arange(self.shape[0])]

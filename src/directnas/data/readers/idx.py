"""IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or not."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from directnas.data.datasets import Dataset, ImageData, with_stats
from directnas.data.readers.registry import Reader
from directnas.errors import UserError

_IDX_DTYPES = {0x08: np.uint8}
_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
          "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST format), gzip-compressed or not."""
    if not path.is_file():
        raise UserError(f"dataset file {path} is missing: install Debian's dataset-fashion-mnist "
                        "(apt-get install dataset-fashion-mnist) or pass --data DIR")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype not in _IDX_DTYPES or not 1 <= ndim <= 4:
            raise ValueError("bad magic number")
        dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
        n = int(np.prod(dims))
        body = np.frombuffer(raw, dtype=_IDX_DTYPES[dtype], offset=4 + 4 * ndim)
        if body.size != n:
            raise ValueError(f"expected {n} values, found {body.size}")
        return body.reshape(dims)
    except (OSError, EOFError, ValueError, struct.error, gzip.BadGzipFile) as e:
        raise UserError(f"dataset file {path} is corrupt or truncated ({e}): reinstall or re-download it") from None


def _find(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return root / f"{stem}.gz"


def read_idx_dir(root: Path, name: str = "fashion-mnist") -> Dataset:
    """``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]`` and the ``t10k-``
    pair in ``root``; the number of classes is the largest label + 1."""
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise UserError(f"dataset {root}: {prefix} images {x.shape} and labels {y.shape} do not match")
        parts[split] = ImageData(torch.from_numpy(x.copy()).unsqueeze(1),
                                 torch.from_numpy(y.astype(np.int64)), 0)
    k = int(max(parts["train"].labels.max(), parts["test"].labels.max())) + 1
    for p in parts.values():
        p.num_classes = k
    return with_stats(name, parts["train"], parts["test"])


def detect(root: Path) -> bool:
    """Any of the four IDX files (a missing one is then named by ``read``)."""
    return any((root / s).is_file() or (root / f"{s}.gz").is_file() for s in _STEMS)


def read(root: Path, *, size: int | None = None, skip_bad_images: bool = False) -> Dataset:
    """The IDX pair of ``root`` at their own size (``size`` is applied later, by ``as_dataset``)."""
    return read_idx_dir(root, root.name)


READER = Reader("idx", "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] and the "
                "t10k- pair", detect, read)

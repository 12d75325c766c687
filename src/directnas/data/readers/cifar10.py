"""CIFAR-10's binary batches (``cifar-10-batches-bin``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from directnas.data.datasets import Dataset, ImageData, with_stats
from directnas.data.readers.registry import Reader
from directnas.errors import UserError

_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
ROW = 3073  # a label byte and 3 x 32 x 32 pixels


def _read_batches(files: list[Path]) -> ImageData:
    arrs = []
    for f in files:
        if not f.is_file():
            raise UserError(f"CIFAR-10 file {f} is missing: point --data at cifar-10-batches-bin")
        raw = np.frombuffer(f.read_bytes(), dtype=np.uint8)
        if raw.size % ROW:
            raise UserError(f"CIFAR-10 file {f} is truncated ({raw.size} bytes is not a multiple of {ROW})")
        arrs.append(raw.reshape(-1, ROW))
    a = np.concatenate(arrs)
    return ImageData(torch.from_numpy(a[:, 1:].reshape(-1, 3, 32, 32).copy()),
                     torch.from_numpy(a[:, 0].astype(np.int64)), 10)


def read_cifar10_bin(root: Path) -> Dataset:
    """``data_batch_1..5.bin`` (training) and ``test_batch.bin`` in ``root``."""
    train = _read_batches([root / f for f in _FILES[:5]])
    test = _read_batches([root / _FILES[5]])
    return with_stats("cifar10", train, test)


def detect(root: Path) -> bool:
    """Any of the six batch files (a missing one is then named by ``read``)."""
    return any((root / f).is_file() for f in _FILES)


def read(root: Path, *, size: int | None = None, skip_bad_images: bool = False) -> Dataset:
    """The batches of ``root`` at 32 x 32 (``size`` is applied later, by ``as_dataset``)."""
    return read_cifar10_bin(root)


READER = Reader("cifar10-binary", "data_batch_1..5.bin and test_batch.bin", detect, read)

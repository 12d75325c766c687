"""Datasets as uint8 images (in memory, or memory-mapped from a decoded cache) and labels;
a fixed-seed validation split; batched, vectorised augmentation.

The readers of data on disk are in ``directnas.data.readers``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from directnas.data.augment import CROPS, crop_kind, random_resized_crop
from directnas.errors import UserError

log = logging.getLogger(__name__)
STATS_CHUNK = 4096  # images per step of the mean/std pass over memory-mapped images
_SQUARES = (np.arange(256, dtype=np.uint32) ** 2).astype(np.uint16)


@dataclass
class ImageData:
    """Images (N, C, H, W) uint8 and labels (N,) int64.

    ``store`` holds the images: in memory, or memory-mapped from a file (``mapped``).  ``rows``
    are this set's rows of ``store`` (None: all of them, in order).  A subset of mapped images is
    a new ``rows`` over the same file (nothing is copied); training reads them a batch at a time
    with ``take``, so a set larger than RAM trains from the file.
    """

    store: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    rows: torch.Tensor | None = None
    mapped: bool = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def images(self) -> torch.Tensor:
        """All images (N, C, H, W); a subset of mapped images is read into memory here."""
        return self.store if self.rows is None else self.store[self.rows]

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W) without reading any image."""
        c, h, w = self.store.shape[1:]
        return len(self), int(c), int(h), int(w)

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """The images at positions ``idx`` (B, C, H, W), read from the store."""
        return self.store[idx if self.rows is None else self.rows[idx]]

    def subset(self, idx: torch.Tensor) -> "ImageData":
        """The images at positions ``idx``: copied when in memory, new rows when mapped."""
        if not self.mapped:
            return ImageData(self.images[idx], self.labels[idx], self.num_classes)
        rows = idx if self.rows is None else self.rows[idx]
        return ImageData(self.store, self.labels[idx], self.num_classes, rows, True)

    def with_classes(self, num_classes: int) -> "ImageData":
        """The same images and labels with ``num_classes`` classes."""
        return dataclasses.replace(self, num_classes=num_classes)


@dataclass
class Dataset:
    name: str
    train: ImageData
    test: ImageData
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.train.shape[1:]


def pixel_sums(x: np.ndarray) -> np.ndarray:
    """Per image and channel of uint8 images (B, C, H, W): the sum of the pixels and the sum of
    their squares, (B, 2, C) int64 (exact)."""
    return np.stack([x.sum(axis=(2, 3), dtype=np.int64),
                     _SQUARES[x].sum(axis=(2, 3), dtype=np.int64)], axis=1)


def stats_from_sums(sums: np.ndarray, pixels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (unbiased, at least 1e-3) in [0, 1] of the images whose
    ``pixel_sums`` are ``sums`` (N, 2, C), each of ``pixels`` pixels per channel."""
    m = max(1, len(sums) * pixels)
    s, s2 = ([int(v) for v in row] for row in sums.sum(axis=0, dtype=np.int64))
    mean = tuple(a / m / 255.0 for a in s)
    var = [(b * m - a * a) / (m * max(1, m - 1)) for a, b in zip(s, s2)]  # exact in integers
    return mean, tuple(max(1e-3, math.sqrt(max(0.0, v)) / 255.0) for v in var)


def _channel_stats(data: ImageData) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``data`` in [0, 1]; mapped images a chunk at a time."""
    if not data.mapped:
        x = data.images.float() / 255.0
        return (tuple(float(v) for v in x.mean(dim=(0, 2, 3))),
                tuple(float(v) for v in x.std(dim=(0, 2, 3)).clamp_min(1e-3)))
    n, _, h, w = data.shape
    sums = [pixel_sums(data.take(torch.arange(i, min(n, i + STATS_CHUNK))).numpy())
            for i in range(0, n, STATS_CHUNK)]
    return stats_from_sums(np.concatenate(sums) if sums else np.zeros((0, 2, 1), np.int64), h * w)


def with_stats(name: str, train: ImageData, test: ImageData) -> Dataset:
    """A ``Dataset`` normalised with the training images' per-channel mean and std."""
    mean, std = _channel_stats(train)
    return Dataset(name, train, test, mean, std)


def split_train_valid(data: ImageData, *, valid_size: int, seed: int) -> tuple[ImageData, ImageData]:
    """A fixed-seed split of the training set; the validation part drives alpha.  Mapped images
    are split by rows (nothing is copied)."""
    if not 0 < valid_size < len(data):
        raise UserError(f"validation size {valid_size} must be between 1 and {len(data) - 1}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data), generator=g)
    return data.subset(perm[valid_size:]), data.subset(perm[:valid_size])


# ---- batching --------------------------------------------------------------------------------
class Batches:
    """Shuffled, normalised, optionally augmented batches of an ImageData (each batch's images
    are read with ``ImageData.take``: memory-mapped images are read a batch at a time).

    Augmentation runs on the whole batch with tensor operations: no per-sample Python.  The
    crop (``crop``; ``auto``: by the images' size, ``augment.crop_kind``) is a random crop with
    ``pad`` pixels of zero padding for images under 48 px, and a random resized crop
    (``augment.random_resized_crop``: 35-100 % of the area, aspect ratio 3/4-4/3) from 48 px;
    then a horizontal flip, and with ``erase`` > 0 random erasing: with that probability a
    random rectangle of 2-33 % of the image, aspect ratio 0.3-3.3, is set to the dataset mean.
    ``rank``/``world`` shard each epoch like DistributedSampler (every rank gets the same
    number of batches).  Batches are drawn and
    augmented on the CPU (one RNG stream on every device) and handed over on ``device``.
    """

    def __init__(self, data: ImageData, *, batch_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], augment: bool = False, shuffle: bool = True,
                 pad: int = 2, flip: bool = True, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world: int = 1, channels_last: bool = False,
                 erase: float = 0.0, device: torch.device | str = "cpu",
                 crop: str = "auto") -> None:
        if not 0.0 <= erase <= 1.0:
            raise UserError(f"random erasing probability {erase} is not in [0, 1]: "
                            "pass one such as 0.25")
        if crop not in CROPS:
            raise UserError(f"crop {crop!r} is not one of {', '.join(CROPS)}")
        self.crop = crop_kind(crop, data.shape[2])
        self.data, self.batch_size, self.erase = data, batch_size, erase
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255.0
        self.augment, self.shuffle, self.pad, self.flip = augment, shuffle, pad, flip
        self.drop_last, self.rank, self.world = drop_last, rank, world
        self.channels_last = channels_last
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.data) // self.world
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        per_rank = n // self.world
        order = order[self.rank * per_rank:(self.rank + 1) * per_rank]
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.transform(self.data.take(idx)), self.labels(idx)

    def labels(self, idx: torch.Tensor) -> torch.Tensor:
        return self.data.labels[idx].to(self.device, non_blocking=True)

    def forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self

    def transform(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) uint8 -> float
        x = x.float()
        if self.augment:
            x = self._augment(x)
        x = ((x - self.mean) / self.std).to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.generator
        if self.crop == "resized":
            x = random_resized_crop(x, g, flip=self.flip)
            return self._erase(x) if self.erase > 0 else x
        if self.pad > 0:
            p = self.pad
            xp = torch.nn.functional.pad(x, (p, p, p, p))
            oy = torch.randint(0, 2 * p + 1, (b,), generator=g)
            ox = torch.randint(0, 2 * p + 1, (b,), generator=g)
            rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
            cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
            bi = torch.arange(b)[:, None, None, None]
            ci = torch.arange(c)[None, :, None, None]
            x = xp[bi, ci, rows, cols]
        if self.flip:
            m = torch.rand(b, generator=g) < 0.5
            x = torch.where(m[:, None, None, None], x.flip(-1), x)
        if self.erase > 0:
            x = self._erase(x)
        return x

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        """Random erasing (Zhong et al. 2020) as one masked write: the rectangle takes the mean
        pixel, which normalises to 0 (torchvision's ``RandomErasing(value=0)`` after Normalize)."""
        b, _, h, w = x.shape
        g = self.generator
        area = h * w * (0.02 + 0.31 * torch.rand(b, generator=g))
        lo, hi = math.log(0.3), math.log(3.3)
        ratio = torch.exp(lo + (hi - lo) * torch.rand(b, generator=g))
        eh = (area * ratio).sqrt().round().clamp(1, h).long()
        ew = (area / ratio).sqrt().round().clamp(1, w).long()
        top = (torch.rand(b, generator=g) * (h - eh + 1)).long()
        left = (torch.rand(b, generator=g) * (w - ew + 1)).long()
        on = torch.rand(b, generator=g) < self.erase
        r, c = torch.arange(h), torch.arange(w)
        rows = (r >= top[:, None]) & (r < (top + eh)[:, None]) & on[:, None]  # (B, H)
        cols = (c >= left[:, None]) & (c < (left + ew)[:, None])  # (B, W)
        mask = (rows[:, :, None] & cols[:, None, :])[:, None]  # (B, 1, H, W)
        return torch.where(mask, self.mean.to(x.dtype), x)

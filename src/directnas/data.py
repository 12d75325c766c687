"""Datasets held in memory as uint8 tensors; batched, vectorised augmentation.

Readers: Fashion-MNIST/MNIST IDX (gzip or raw), CIFAR-10 binary, ImageFolder (Pillow).
``load_dataset("fashion-mnist")`` reads Debian's ``dataset-fashion-mnist`` package.
"""

from __future__ import annotations

import gzip
import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from directnas.errors import UserError

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_DTYPES = {0x08: np.uint8}


@dataclass
class ImageData:
    """Images (N, C, H, W) uint8 and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: torch.Tensor) -> "ImageData":
        return ImageData(self.images[idx], self.labels[idx], self.num_classes)


@dataclass
class Dataset:
    name: str
    train: ImageData
    test: ImageData
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)


# ---- readers ---------------------------------------------------------------------------------
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
    return _with_stats(name, parts["train"], parts["test"])


def read_cifar10_bin(root: Path) -> Dataset:
    def read(files: list[Path]) -> ImageData:
        arrs = []
        for f in files:
            if not f.is_file():
                raise UserError(f"CIFAR-10 file {f} is missing: point --data at cifar-10-batches-bin")
            raw = np.frombuffer(f.read_bytes(), dtype=np.uint8)
            if raw.size % 3073:
                raise UserError(f"CIFAR-10 file {f} is truncated ({raw.size} bytes is not a multiple of 3073)")
            arrs.append(raw.reshape(-1, 3073))
        a = np.concatenate(arrs)
        return ImageData(torch.from_numpy(a[:, 1:].reshape(-1, 3, 32, 32).copy()),
                         torch.from_numpy(a[:, 0].astype(np.int64)), 10)

    train = read([root / f"data_batch_{i}.bin" for i in range(1, 6)])
    test = read([root / "test_batch.bin"])
    return _with_stats("cifar10", train, test)


def read_image_folder(root: Path) -> Dataset:
    """``root/train/<class>/*.png|jpg`` and ``root/test/<class>/...`` (or ``val``)."""
    from PIL import Image, UnidentifiedImageError

    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"ImageFolder {root}/train has no class folders: use train/<class>/<image>")

    def read(split: Path) -> ImageData:
        xs, ys = [], []
        size = None
        for ci, cname in enumerate(classes):
            for f in sorted((split / cname).glob("*")):
                if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"):
                    continue
                try:
                    with Image.open(f) as im:
                        im.load()
                        mode = im.mode if im.mode in ("L", "RGB") else "RGB"
                        a = np.asarray(im.convert(mode))
                except (UnidentifiedImageError, OSError) as e:
                    raise UserError(f"image {f} is corrupt or truncated ({e}): remove or replace it") from None
                if size is None:
                    size = a.shape
                if a.shape != size:
                    raise UserError(f"image {f} has shape {a.shape}, others {size}: resize all images to one size")
                xs.append(a if a.ndim == 3 else a[:, :, None])
                ys.append(ci)
        if not xs:
            raise UserError(f"ImageFolder split {split} holds no images: put .png/.jpg files in {split}/<class>/")
        x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
        return ImageData(x, torch.tensor(ys, dtype=torch.int64), len(classes))

    if not test_dir.is_dir():
        raise UserError(f"ImageFolder {root} needs train/ and test/ (or val/) folders: add a test/ "
                        "folder with the same class folders")
    return _with_stats(root.name, read(root / "train"), read(test_dir))


def _with_stats(name: str, train: ImageData, test: ImageData) -> Dataset:
    x = train.images.float() / 255.0
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in x.std(dim=(0, 2, 3)).clamp_min(1e-3))
    return Dataset(name, train, test, mean, std)


def load_dataset(spec: str | Path) -> Dataset:
    """``fashion-mnist`` (Debian path) or a folder: IDX files, CIFAR-10 binary or ImageFolder."""
    s = str(spec)
    if s in ("fashion-mnist", "fashion_mnist"):
        if not FASHION_MNIST_DIR.is_dir():
            raise UserError(f"Fashion-MNIST not found at {FASHION_MNIST_DIR}: run "
                            "'apt-get install dataset-fashion-mnist' or pass --data DIR")
        return read_idx_dir(FASHION_MNIST_DIR)
    root = Path(s)
    if not root.is_dir():
        raise UserError(f"dataset {s!r} is neither 'fashion-mnist' nor an existing folder: check --data")
    if any(root.glob("train-images-idx3-ubyte*")):
        return read_idx_dir(root, root.name)
    if (root / "data_batch_1.bin").exists():
        return read_cifar10_bin(root)
    if (root / "train").is_dir():
        return read_image_folder(root)
    raise UserError(f"dataset folder {root} has no IDX files, CIFAR-10 batches or train/ folder: "
                    "point --data at a folder holding one of them")


def split_train_valid(data: ImageData, *, valid_size: int, seed: int) -> tuple[ImageData, ImageData]:
    """A fixed-seed split of the training set; the validation part drives alpha."""
    if not 0 < valid_size < len(data):
        raise UserError(f"validation size {valid_size} must be between 1 and {len(data) - 1}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data), generator=g)
    return data.subset(perm[valid_size:]), data.subset(perm[:valid_size])


# ---- batching --------------------------------------------------------------------------------
class Batches:
    """Shuffled, normalised, optionally augmented batches of an in-memory ImageData.

    Augmentation (random crop with zero padding, horizontal flip, and with ``erase`` > 0 random
    erasing: with that probability a random rectangle of 2-33 % of the image, aspect ratio
    0.3-3.3, is set to the dataset mean) runs on the whole batch with tensor indexing: no
    per-sample Python.  ``rank``/``world`` shard each epoch like
    DistributedSampler (every rank gets the same number of batches).
    """

    def __init__(self, data: ImageData, *, batch_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], augment: bool = False, shuffle: bool = True,
                 pad: int = 2, flip: bool = True, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world: int = 1, channels_last: bool = False,
                 erase: float = 0.0) -> None:
        if not 0.0 <= erase <= 1.0:
            raise UserError(f"random erasing probability {erase} is not in [0, 1]: "
                            "pass one such as 0.25")
        self.data, self.batch_size, self.erase = data, batch_size, erase
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255.0
        self.augment, self.shuffle, self.pad, self.flip = augment, shuffle, pad, flip
        self.drop_last, self.rank, self.world = drop_last, rank, world
        self.channels_last = channels_last
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
            yield self.transform(self.data.images[idx]), self.data.labels[idx]

    def forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield from self

    def transform(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) uint8 -> float
        x = x.float()
        if self.augment:
            x = self._augment(x)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.generator
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

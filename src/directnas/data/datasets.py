"""Datasets held in memory as uint8 tensors; batched, vectorised augmentation.

Readers: Fashion-MNIST/MNIST IDX (gzip or raw), CIFAR-10 binary, ImageFolder (Pillow; split
folders or plain class folders).
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
    return with_stats(name, parts["train"], parts["test"])


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
    return with_stats("cifar10", train, test)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TEST_FRACTION = 0.2  # of a plain ImageFolder, carved with a fixed seed


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_images(files: list[tuple[Path, int]], num_classes: int, size: int | None) -> ImageData:
    """(image, class) files -> ImageData; every image in the first one's mode (L or RGB), and
    resized to ``size`` x ``size`` when given."""
    from PIL import Image, UnidentifiedImageError

    xs, ys = [], []
    mode, shape = None, None
    for f, ci in files:
        try:
            with Image.open(f) as im:
                im.load()
                mode = mode or ("L" if im.mode in ("1", "L", "LA", "I", "I;16") else "RGB")
                im = im.convert(mode)
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                a = np.asarray(im)
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"image {f} is corrupt or truncated ({e}): remove or replace it") from None
        shape = shape or a.shape
        if a.shape != shape:
            raise UserError(f"image {f} has shape {a.shape}, others {shape}: resize all images to "
                            "one size or pass --input-size")
        xs.append(a if a.ndim == 3 else a[:, :, None])
        ys.append(ci)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    return ImageData(x, torch.tensor(ys, dtype=torch.int64), num_classes)


def _image_files(split: Path, classes: list[str]) -> list[tuple[Path, int]]:
    files = [(f, ci) for ci, c in enumerate(classes) for f in sorted((split / c).glob("*"))
             if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise UserError(f"ImageFolder {split} holds no images: put .png/.jpg files in {split}/<class>/")
    return files


def read_image_folder(root: Path, *, size: int | None = None, seed: int = 0) -> Dataset:
    """``root/train/<class>/*.png|jpg`` + ``root/test/<class>/...`` (or ``val``), or a plain
    ``root/<class>/...`` whose test split (``TEST_FRACTION`` of each class) is carved with a
    fixed seed.  With ``size`` every image is resized to ``size`` x ``size``."""
    if (root / "train").is_dir():
        classes = _class_dirs(root / "train")
        if not classes:
            raise UserError(f"ImageFolder {root}/train has no class folders: use train/<class>/<image>")
        test_dir = root / "test" if (root / "test").is_dir() else root / "val"
        if not test_dir.is_dir():
            raise UserError(f"ImageFolder {root} needs train/ and test/ (or val/) folders: add a "
                            "test/ folder with the same class folders")
        train = _read_images(_image_files(root / "train", classes), len(classes), size)
        test = _read_images(_image_files(test_dir, classes), len(classes), size)
        return with_stats(root.name, train, test)
    classes = _class_dirs(root)
    if not classes:
        raise UserError(f"dataset folder {root} has no IDX files, CIFAR-10 batches, train/ folder "
                        "or class folders: point --data at a folder holding one of them")
    files = _image_files(root, classes)
    data = _read_images(files, len(classes), size)
    g = torch.Generator().manual_seed(seed)
    test_idx = []
    for c in range(len(classes)):  # per class: the test split keeps the class balance
        idx = torch.nonzero(data.labels == c).flatten()
        n_test = int(round(TEST_FRACTION * len(idx))) if len(idx) > 1 else 0
        test_idx.append(idx[torch.randperm(len(idx), generator=g)[:n_test]])
    is_test = torch.zeros(len(data), dtype=torch.bool)
    is_test[torch.cat(test_idx)] = True
    log.info("ImageFolder %s: %d classes, %d images; %d carved out as the test split (seed %d)",
             root, len(classes), len(data), int(is_test.sum()), seed)
    return with_stats(root.name, data.subset(torch.nonzero(~is_test).flatten()),
                       data.subset(torch.nonzero(is_test).flatten()))


def with_stats(name: str, train: ImageData, test: ImageData) -> Dataset:
    x = train.images.float() / 255.0
    mean = tuple(float(v) for v in x.mean(dim=(0, 2, 3)))
    std = tuple(float(v) for v in x.std(dim=(0, 2, 3)).clamp_min(1e-3))
    return Dataset(name, train, test, mean, std)


def load_dataset(spec: str | Path, *, size: int | None = None) -> Dataset:
    """``fashion-mnist`` (Debian path) or a folder: IDX files, CIFAR-10 binary or ImageFolder
    (``size``: resize ImageFolder images while reading; other formats are resized later by
    ``data_sources.fit_to_space``)."""
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
    return read_image_folder(root, size=size)


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
    DistributedSampler (every rank gets the same number of batches).  Batches are drawn and
    augmented on the CPU (one RNG stream on every device) and handed over on ``device``.
    """

    def __init__(self, data: ImageData, *, batch_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], augment: bool = False, shuffle: bool = True,
                 pad: int = 2, flip: bool = True, seed: int = 0, drop_last: bool = False,
                 rank: int = 0, world: int = 1, channels_last: bool = False,
                 erase: float = 0.0, device: torch.device | str = "cpu") -> None:
        if not 0.0 <= erase <= 1.0:
            raise UserError(f"random erasing probability {erase} is not in [0, 1]: "
                            "pass one such as 0.25")
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
            yield self.transform(self.data.images[idx]), self.labels(idx)

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

"""Folders of images (PNG, JPEG, ...): ``root/train/<class>/`` with ``root/test/<class>/`` (or
``val``), or a plain ``root/<class>/`` whose test split is carved with a fixed seed.  Images are
decoded once into a memory-mapped cache (``decoded``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from directnas.data.checks import MIN_IMAGES_PER_CLASS
from directnas.data.datasets import Dataset, ImageData, stats_from_sums
from directnas.data.readers.decoded import DecodedImages, ImageFile, decode_folder
from directnas.data.readers.registry import Reader
from directnas.errors import UserError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TEST_FRACTION = 0.2  # of a plain ImageFolder, carved with a fixed seed
SIDE_SAMPLE = 256  # images whose size is read to fit a space to a folder


def _class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _names(folder: Path) -> list[str]:
    """The image files of ``folder`` by name (none when it does not exist)."""
    if not folder.is_dir():
        return []
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.name.lower().endswith(IMAGE_SUFFIXES) and e.is_file())


def _image_files(split: Path, classes: list[str], part: int) -> list[ImageFile]:
    """The image files of ``split/<class>/`` in class then name order, labelled by class."""
    files: list[ImageFile] = []
    for ci, c in enumerate(classes):
        base = os.path.join(split, c)
        files += [(f"{base}/{n}", ci, part) for n in _names(split / c)]
    if not files:
        raise UserError(f"ImageFolder {split} holds no images: put .png/.jpg files in {split}/<class>/")
    return files


def _kept_classes(splits: list[Path], classes: list[str], *, carved: bool) -> list[str]:
    """``classes`` less those without an image in any split (left out with a one-line note);
    UserError for a class with too few training images or, with a test folder, none to test on
    (``carved``: the test split is carved from each class, which then needs one image more)."""
    counts = {c: [len(_names(split / c)) for split in splits] for c in classes}
    empty = [c for c in classes if not any(counts[c])]
    if empty and len(empty) < len(classes):
        log.warning("ImageFolder %s: class folder(s) %s hold no images: left out (%d classes)",
                    splits[0], ", ".join(empty), len(classes) - len(empty))
    kept = [c for c in classes if any(counts[c])]
    need = MIN_IMAGES_PER_CLASS + (1 if carved else 0)
    few = [c for c in kept if counts[c][0] < need]
    if few:
        raise UserError(f"ImageFolder {splits[0]}: class folder(s) {', '.join(few)} hold fewer "
                        f"than {need} images{' (one is carved out to test on)' if carved else ''}"
                        ": add images or remove the class folder")
    untested = [c for c in kept if len(splits) > 1 and counts[c][1] == 0]
    if untested:
        raise UserError(f"ImageFolder {splits[1]} has no images of class(es) "
                        f"{', '.join(untested)}: add {splits[1]}/<class>/ images of every class "
                        "(or remove the class from train/)")
    return kept


def _split_dirs(root: Path) -> tuple[list[str], Path]:
    """The class names of ``root/train`` and the test folder (``test`` or ``val``)."""
    classes = _class_dirs(root / "train")
    if not classes:
        raise UserError(f"ImageFolder {root}/train has no class folders: use train/<class>/<image>")
    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    if not test_dir.is_dir():
        raise UserError(f"ImageFolder {root} needs train/ and test/ (or val/) folders: add a "
                        "test/ folder with the same class folders")
    return classes, test_dir


def _mapped(d: DecodedImages, lo: int, hi: int, k: int) -> ImageData:
    return ImageData(d.images[lo:hi], d.labels[lo:hi], k, None, True)


def _dataset(name: str, d: DecodedImages, train: ImageData, test: ImageData,
             train_rows: np.ndarray | slice) -> Dataset:
    """The dataset, normalised with the training rows' statistics from the cached pixel sums."""
    h, w = d.images.shape[2:]
    mean, std = stats_from_sums(d.sums[train_rows], int(h) * int(w))
    return Dataset(name, train, test, mean, std)


def carve_test(data: ImageData, num_classes: int, seed: int) -> tuple[ImageData, ImageData]:
    """(train, test): ``TEST_FRACTION`` of each class, drawn with ``seed``, is the test split."""
    g = torch.Generator().manual_seed(seed)
    test_idx = []
    for c in range(num_classes):  # per class: the test split keeps the class balance
        idx = torch.nonzero(data.labels == c).flatten()
        n_test = int(round(TEST_FRACTION * len(idx))) if len(idx) > 1 else 0
        test_idx.append(idx[torch.randperm(len(idx), generator=g)[:n_test]])
    is_test = torch.zeros(len(data), dtype=torch.bool)
    is_test[torch.cat(test_idx)] = True
    return (data.subset(torch.nonzero(~is_test).flatten()),
            data.subset(torch.nonzero(is_test).flatten()))


def read_image_folder(root: Path, *, size: int | None = None, seed: int = 0,
                      skip_bad_images: bool = False, workers: int | None = None) -> Dataset:
    """``root/train/<class>/*.png|jpg`` + ``root/test/<class>/...`` (or ``val``), or a plain
    ``root/<class>/...`` whose test split (``TEST_FRACTION`` of each class) is carved with a
    fixed seed.  With ``size`` every image is resized to ``size`` x ``size``.  The images are
    memory-mapped from the decoded cache (decoded on ``workers`` processes the first time)."""
    if (root / "train").is_dir():
        classes, test_dir = _split_dirs(root)
        classes = _kept_classes([root / "train", test_dir], classes, carved=False)
        files = (_image_files(root / "train", classes, 0)
                 + _image_files(test_dir, classes, 1))
        d = decode_folder(root, files, size=size, skip_bad_images=skip_bad_images, workers=workers)
        n_train = int((d.parts == 0).sum())
        if n_train == 0 or n_train == len(d.parts):
            raise UserError(f"ImageFolder {root}: no readable images in its "
                            f"{'train' if n_train == 0 else 'test'} split")
        k = len(classes)
        return _dataset(root.name, d, _mapped(d, 0, n_train, k),
                        _mapped(d, n_train, len(d.parts), k), slice(0, n_train))
    classes = _class_dirs(root)
    if not classes:
        raise UserError(f"dataset folder {root} has no class folders: put images in "
                        f"{root}/<class>/")
    classes = _kept_classes([root], classes, carved=True)
    d = decode_folder(root, _image_files(root, classes, 0), size=size,
                      skip_bad_images=skip_bad_images, workers=workers)
    train, test = carve_test(_mapped(d, 0, len(d.parts), len(classes)), len(classes), seed)
    log.info("ImageFolder %s: %d classes, %d images; %d carved out as the test split (seed %d)",
             root, len(classes), len(d.parts), len(test), seed)
    assert train.rows is not None
    return _dataset(root.name, d, train, test, train.rows.numpy())


def image_sides(root: Path, *, sample: int = SIDE_SAMPLE) -> list[int]:
    """The shorter sides of up to ``sample`` training images of the folder ``root``, spread
    evenly over its files (their headers are read, not their pixels; unreadable ones are left
    out: decoding names them)."""
    from PIL import Image

    split = root / "train" if (root / "train").is_dir() else root
    classes = _class_dirs(split)
    files = _image_files(split, classes, 0) if classes else []
    step = max(1, len(files) // sample)
    sides = []
    for path, _, _ in files[::step][:sample]:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except Exception:  # noqa: BLE001 - whatever Pillow raises, the file is unreadable
            continue
    return sides


def detect(root: Path) -> bool:
    """A ``train/`` folder, or class folders (any non-hidden sub-folder)."""
    return (root / "train").is_dir() or any(
        p.is_dir() and not p.name.startswith(".") for p in root.iterdir())


def read(root: Path, *, size: int | None = None, skip_bad_images: bool = False) -> Dataset:
    """The image folder ``root``, resized to ``size`` x ``size`` while decoding when given."""
    return read_image_folder(root, size=size, skip_bad_images=skip_bad_images)


READER = Reader("image-folder", "train/<class>/ and test/<class>/ (or val/) image files, or "
                "<class>/ folders of images", detect, read)

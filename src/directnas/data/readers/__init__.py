"""Readers of datasets on disk, registered by name (``READERS``): ``idx`` (MNIST-format files),
``cifar10-binary`` (CIFAR-10's batches) and ``image-folder`` (PNG/JPEG files in class folders,
decoded once into a memory-mapped cache).  ``load_dataset`` picks the first reader whose
``detect`` accepts the folder.
"""

from __future__ import annotations

from pathlib import Path

from directnas.data.datasets import Dataset
from directnas.data.readers import cifar10, idx, image_folder
from directnas.data.readers.cifar10 import read_cifar10_bin
from directnas.data.readers.idx import read_idx, read_idx_dir
from directnas.data.readers.image_folder import read_image_folder
from directnas.data.readers.registry import READERS, Reader, accepted_layouts, detect, register
from directnas.errors import UserError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

for _reader in (idx.READER, cifar10.READER, image_folder.READER):
    register(_reader)


class DataPath(str):
    """A dataset name or folder (a ``str`` everywhere) that carries how to read it:
    ``DataPath("photos/", skip_bad_images=True)`` skips unreadable images."""

    skip_bad_images: bool

    def __new__(cls, value: str | Path, *, skip_bad_images: bool = False) -> "DataPath":
        self = super().__new__(cls, str(value))
        self.skip_bad_images = skip_bad_images
        return self


def load_dataset(spec: str | Path, *, size: int | None = None,
                 skip_bad_images: bool | None = None) -> Dataset:
    """``fashion-mnist`` (Debian path) or a folder in a registered layout (``size``: resize
    images while reading where the reader does, i.e. image folders; other formats are resized
    later by ``as_dataset``).  ``skip_bad_images`` (default: the ``DataPath``'s, else False)
    skips unreadable images with a count instead of stopping at the first."""
    if skip_bad_images is None:
        skip_bad_images = bool(getattr(spec, "skip_bad_images", False))
    s = str(spec)
    if s in ("fashion-mnist", "fashion_mnist"):
        if not FASHION_MNIST_DIR.is_dir():
            raise UserError(f"Fashion-MNIST not found at {FASHION_MNIST_DIR}: run "
                            "'apt-get install dataset-fashion-mnist' or pass --data DIR")
        return read_idx_dir(FASHION_MNIST_DIR)
    root = Path(s)
    if not root.is_dir():
        raise UserError(f"dataset {s!r} is neither 'fashion-mnist' nor an existing folder: check --data")
    reader = detect(root)
    if reader is None:
        raise UserError(f"dataset folder {root} has no IDX files, CIFAR-10 binary batches or image "
                        f"folders; the accepted layouts: {accepted_layouts()}")
    return reader.read(root, size=size, skip_bad_images=skip_bad_images)


__all__ = ["DataPath", "FASHION_MNIST_DIR", "READERS", "Reader", "accepted_layouts", "detect",
           "load_dataset", "read_cifar10_bin", "read_idx", "read_idx_dir", "read_image_folder",
           "register"]

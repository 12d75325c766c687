"""Every form of data the library takes, turned into a directnas ``Dataset``; a space fitted
to the data (its classes, channels and input size).

``data`` / ``test`` may be a directnas ``Dataset``, a name or folder for ``load_dataset``, a
pair ``(images, labels)`` of tensors, or any map-style ``torch.utils.data.Dataset`` of
``(image, label)``.  Images: uint8 (0-255) or floats in [0, 1]; tensors are (N, C, H, W),
(N, H, W), or per item (C, H, W); PIL images and numpy arrays are (H, W[, C]) as torchvision
reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from directnas.data.checks import check_dataset
from directnas.data.datasets import Dataset, ImageData, with_stats
from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.space.space import SearchSpace

log = logging.getLogger(__name__)
DataLike = Union[Dataset, str, Path, tuple[torch.Tensor, torch.Tensor], torch.utils.data.Dataset]


def _to_uint8(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise UserError(f"{what}: images must be uint8 (0-255) or floats in [0, 1], not {x.dtype}")
    nan = torch.isnan(x)
    if bool(nan.any()):
        first = int(nan.flatten(1).any(1).nonzero()[0]) if x.ndim > 1 else 0
        raise UserError(f"{what}: {int(nan.sum())} pixel(s) are NaN (the first in image {first}): "
                        "replace or drop those images (e.g. torch.nan_to_num)")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise UserError(f"{what}: float images must lie in [0, 1] (found {lo:.3g} to {hi:.3g}); "
                        "pass them before normalising (directnas normalises itself)")
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


def _item_image(img: Any, what: str) -> torch.Tensor:  # one image -> (C, H, W)
    if isinstance(img, torch.Tensor):
        t = img.detach().cpu()
        return t.unsqueeze(0) if t.ndim == 2 else t
    if isinstance(img, np.ndarray) or hasattr(img, "getbands"):  # numpy or PIL: (H, W[, C])
        a = np.asarray(img)
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        t = torch.from_numpy(a.copy())
        return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    raise UserError(f"{what}: an item's image is a {type(img).__name__}; give a tensor, a numpy "
                    "array or a PIL image")


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:  # (N, C, H, W) uint8
    if x.shape[-2:] == (size, size) or len(x) == 0:
        return x
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False)
    return y.round().clamp(0, 255).to(torch.uint8)


def _from_items(ds: Any, what: str, size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i in range(len(ds)):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise UserError(f"{what}: item {i} is not an (image, label) pair")
        x = _to_uint8(_item_image(item[0], what), what)
        if size is not None:
            x = _resize(x[None], size)[0]
        if xs and x.shape != xs[0].shape:
            raise UserError(f"{what}: item {i} is {tuple(x.shape)}, item 0 {tuple(xs[0].shape)}: "
                            "give images of one size (or an input size to resize them to)")
        xs.append(x)
        ys.append(int(item[1]))
    if not xs:
        raise UserError(f"{what} is empty: give at least one (image, label)")
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def _image_data(obj: Any, what: str, size: int | None) -> ImageData:
    if isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], torch.Tensor):
        x, y = obj[0].detach().cpu(), torch.as_tensor(obj[1]).detach().cpu()
        x = x.unsqueeze(1) if x.ndim == 3 else x
        if x.numel() == 0 or y.numel() == 0:
            raise UserError(f"{what} is empty (images {tuple(x.shape)}, labels {tuple(y.shape)}): "
                            "give at least one (image, label)")
        if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
            raise UserError(f"{what}: give images (N, C, H, W) and labels (N,), got "
                            f"{tuple(x.shape)} and {tuple(y.shape)}")
        x = _to_uint8(x, what)
        x = _resize(x, size) if size is not None else x
    elif hasattr(obj, "__getitem__") and hasattr(obj, "__len__"):
        x, y = _from_items(obj, what, size)
    else:
        raise UserError(f"{what}: a {type(obj).__name__} is not data; give a directnas Dataset, a "
                        "dataset name or folder, (images, labels) tensors or a torch Dataset")
    if y.is_floating_point() or (len(y) and int(y.min()) < 0):
        raise UserError(f"{what}: labels must be integer class indices >= 0")
    return ImageData(x.contiguous(), y.long(), int(y.max()) + 1 if len(y) else 0)


def as_dataset(data: DataLike, test: DataLike | None = None, *,
               size: int | None = None) -> Dataset:
    """``data`` (and ``test``) as a directnas ``Dataset``; with ``size`` images are resized to
    ``size`` x ``size``.  Without ``test`` a loaded dataset keeps its own test split, other
    forms get an empty one (no test accuracy)."""
    if isinstance(data, (str, Path)):
        data = load_dataset(data, size=size)
    if isinstance(data, Dataset):
        base: Dataset | None = data
        train = data.train
    else:
        base = None
        train = _image_data(data, "data", size)
    if test is not None:
        t = test if isinstance(test, Dataset) else None
        if isinstance(test, (str, Path)):
            t = load_dataset(test, size=size)
        test_data = t.test if t is not None else _image_data(test, "test", size)
    elif base is not None:
        test_data = base.test
    else:
        test_data = ImageData(train.images[:0], train.labels[:0], 0)
    if size is not None:
        train, test_data = _resized(train, size), _resized(test_data, size)
    if len(test_data) and train.shape[1:] != test_data.shape[1:]:
        raise UserError(f"test images are {test_data.shape[1:]} but training images "
                        f"{train.shape[1:]}: give both in one shape")
    k = max(train.num_classes, test_data.num_classes)
    if base is not None and test_data is base.test and train is base.train:
        ds = base
    elif base is not None and train.store is base.train.store and train.rows is base.train.rows:
        ds = Dataset(base.name, train.with_classes(k), test_data.with_classes(k), base.mean,
                     base.std)  # same training images
    else:
        ds = with_stats(base.name if base is not None else "tensors", train.with_classes(k),
                        test_data.with_classes(k))
    check_dataset(ds)
    return ds


def _resized(data: ImageData, size: int) -> ImageData:
    """``data`` at ``size`` x ``size`` (itself when it is that size: mapped images stay mapped)."""
    if data.shape[-2:] == (size, size) or len(data) == 0:
        return data
    return ImageData(_resize(data.images, size), data.labels, data.num_classes)


def fit_space(space: SearchSpace, data: Dataset, *, input_size: int | None = None,
              quiet: bool = False) -> SearchSpace:
    """``space`` with the data's number of classes and channels (and ``input_size`` if given):
    own data needs no YAML edit.  The change is logged (unless ``quiet``); the run's config
    records the result."""
    c = data.input_shape[0]
    changes = {k: (old, new) for k, old, new in (
        ("num_classes", space.num_classes, data.train.num_classes),
        ("input_channels", space.input_channels, c),
        ("input_size", space.input_size, input_size or space.input_size)) if old != new}
    if not changes:
        return space
    d = space.to_dict()
    d["num_classes"] = data.train.num_classes
    d["input"] = {"size": input_size or space.input_size, "channels": c}
    if not quiet:
        log.info("space %s fitted to the data: %s", space.name,
                 ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items()))
    return SearchSpace.from_dict(d)


def space_summary(space: SearchSpace) -> dict[str, Any]:
    """What a run's config records about the space it searched."""
    return {"space": space.name, "num_classes": space.num_classes,
            "input_size": space.input_size, "input_channels": space.input_channels}


__all__: Sequence[str] = ["DataLike", "as_dataset", "fit_space", "space_summary"]

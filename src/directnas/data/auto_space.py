"""The space a run searches when none is named (``space=None`` or ``"auto"``), chosen from the
data before anything is decoded; and one line when a named space is far from the images' size.

- No data named, ``fashion-mnist``, or a folder of IDX files: the ``fashion-mnist`` preset (the
  demo does not change).
- Anything else (a folder of images, CIFAR-10 batches, tensors, a torch ``Dataset``): the space
  of ``space.fitted``'s rule at the images' size: their median shorter side (over up to 256
  images of a folder, read from the headers) rounded to a multiple of 16 (8 below 64 px) and
  capped at ``max_input_size`` (default ``MAX_INPUT_SIZE``, 128 px), or ``input_size`` when
  given.

The caller fits the chosen space's classes and channels to the data (``sources.fit_space``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from directnas.data.datasets import Dataset
from directnas.data.readers import FASHION_MNIST_DIR, detect
from directnas.data.readers.image_folder import image_sides
from directnas.data.sources import DataLike, _item_image
from directnas.errors import UserError
from directnas.space.fitted import (MAX_INPUT_SIZE, MIN_INPUT_SIZE, fitted_input_size, fitted_space,
                                    space_line)
from directnas.space.space import SearchSpace, load_space

AUTO = "auto"
DEMO = "fashion-mnist"
FAR = 2.0  # a named space "far" from the images: its input more than 2x or under 1/2x their side


@dataclass(frozen=True)
class Sides:
    """The images' size: the median shorter side of ``count`` images, and where it was read."""

    median: float
    count: int
    where: str


@dataclass(frozen=True)
class SpaceChoice:
    """The space to search (before its classes and channels are fitted to the data), whether
    the rule built it from the data, and why (or what to warn of; None: nothing to say)."""

    space: SearchSpace
    fitted: bool  # built from the data by the rule (not named, not the demo's preset)
    reason: str | None

    def line(self, final: SearchSpace) -> str | None:
        """The one line to say once the space is ``final`` (fitted to the data's classes)."""
        if self.fitted:
            return f"{self.reason}: {space_line(final)}; {final.num_classes} classes"
        return self.reason

    def note(self, data: Any) -> str:
        """The comment of the saved space: where it came from."""
        how = f"{self.reason} (the rule of directnas.space.fitted)" if self.fitted else \
            f"space {self.space.name} as named"
        return f"The space of a directnas run on {data}: {how}.\nReuse it with --space <this file>."


def image_size(data: DataLike) -> Sides | None:
    """The size of ``data``'s images without decoding them all; None for the IDX and
    ``fashion-mnist`` datasets (the demo's preset fits them) and folders of no known layout."""
    if isinstance(data, (str, Path)):
        if str(data) in (DEMO, "fashion_mnist") or Path(data) == FASHION_MNIST_DIR:
            return None
        root = Path(data)
        reader = detect(root) if root.is_dir() else None
        if reader is None or reader.name == "idx":
            return None
        if reader.name == "cifar10-binary":
            return Sides(32.0, 1, f"the CIFAR-10 batches of {root}")
        sides = image_sides(root)
        return Sides(float(statistics.median(sides)), len(sides),
                     f"the images of {root}") if sides else None
    if isinstance(data, Dataset):
        return Sides(float(min(data.input_shape[1:])), len(data.train), f"dataset {data.name}")
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return Sides(float(min(data[0].shape[-2:])), len(data[0]), "the images given")
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and len(data):
        item = data[0]
        if isinstance(item, (tuple, list)) and len(item) == 2:
            return Sides(float(min(_item_image(item[0], "data").shape[-2:])), 1,
                         f"the {type(data).__name__}'s first image")
    return None


def choose_space(space: str | Path | SearchSpace | None, data: DataLike, *,
                 input_size: int | None = None,
                 max_input_size: int | None = MAX_INPUT_SIZE) -> SpaceChoice:
    """The space ``space`` names, or (None / ``"auto"``) the one chosen from ``data`` (see the
    module's docstring)."""
    if max_input_size is not None and max_input_size < MIN_INPUT_SIZE:
        raise UserError(f"max input size {max_input_size} is too small: give {MIN_INPUT_SIZE} "
                        "px or more")
    auto = space is None or (isinstance(space, str) and space == AUTO)
    sides = image_size(data)
    if not auto:
        named = space if isinstance(space, SearchSpace) else load_space(str(space))
        return SpaceChoice(named, False, _far_line(named, sides, input_size))
    if sides is None:
        return SpaceChoice(load_space(DEMO), False, None)
    size = input_size or fitted_input_size(sides.median, cap=max_input_size)
    fitted = fitted_space(size)
    capped = "" if input_size or max_input_size is None or \
        fitted_input_size(sides.median, cap=None) <= size else \
        f", capped at {max_input_size} px (--max-input-size raises it)"
    given = "as --input-size gives" if input_size else f"median side {sides.median:g} px of " \
        f"{sides.count} image{'s' if sides.count != 1 else ''}{capped}"
    return SpaceChoice(fitted, True, f"space fitted to {sides.where} ({given})")


def _far_line(space: SearchSpace, sides: Sides | None, input_size: int | None) -> str | None:
    """One line when the net of ``space`` sees images far smaller or larger than they are."""
    seen = input_size or space.input_size
    if sides is None or 1 / FAR <= seen / sides.median <= FAR:
        return None
    fits = fitted_space(fitted_input_size(sides.median)).name
    return (f"space {space.name}: the net sees {seen}x{seen} px, but {sides.where} are about "
            f"{sides.median:g} px (median side): they are resized to {seen} px; name no space "
            f"for one fitted to them ({fits}), or pass --input-size")


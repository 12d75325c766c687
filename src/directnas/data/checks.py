"""Checks of a dataset before any work: its labels are the classes 0..K-1, each class has at
least ``MIN_IMAGES_PER_CLASS`` training images, and every class is in the test split when there
is one (a net cannot learn a class it never sees, nor be scored on one it is never shown).
"""

from __future__ import annotations

import torch

from directnas.data.datasets import Dataset
from directnas.errors import UserError

MIN_IMAGES_PER_CLASS = 2  # training images: one alone is memorised, not learnt


def spans(values: list[int]) -> str:
    """``[3, 4, 5, 6, 8]`` -> ``"3-6, 8"``."""
    out: list[str] = []
    for v in values:
        if out and v == last + 1:
            out[-1] = f"{out[-1].split('-')[0]}-{v}"
        else:
            out.append(str(v))
        last = v
    return ", ".join(out)


def _counted(labels: list[int], counts: torch.Tensor, most: int = 5) -> str:
    shown = [f"{c} ({int(counts[c])} image{'s' if counts[c] != 1 else ''})" for c in labels[:most]]
    return ", ".join(shown) + (f" and {len(labels) - most} more" if len(labels) > most else "")


def _name(ds: Dataset) -> str:
    return "the data given" if ds.name == "tensors" else f"dataset {ds.name!r}"


def check_dataset(ds: Dataset) -> None:
    """One-line errors for labels that are not 0..K-1, classes without training or test images
    and classes with fewer than ``MIN_IMAGES_PER_CLASS`` training images."""
    k, name = ds.train.num_classes, _name(ds)
    if len(ds.train) == 0:
        raise UserError(f"the training data of {name} is empty: give at least "
                        f"{MIN_IMAGES_PER_CLASS} images per class")
    train = torch.bincount(ds.train.labels, minlength=k)[:k]
    test = torch.bincount(ds.test.labels, minlength=k)[:k] if len(ds.test) else None
    seen = train + (test if test is not None else 0)
    absent = [c for c in range(k) if seen[c] == 0]
    if absent:
        used = [c for c in range(absent[0], k) if seen[c] > 0]
        raise UserError(f"the labels of {name} are not the classes 0..K-1: no image has label "
                        f"{spans(absent)}, yet label(s) {_counted(used, seen)} are used: "
                        "relabel the classes 0..K-1 or remove the stray images")
    only_test = [c for c in range(k) if train[c] == 0]
    if only_test:
        raise UserError(f"class(es) {spans(only_test)} of {name} have test images but no "
                        "training images: add training images or remove them from the test data")
    if test is not None and (untested := [c for c in range(k) if test[c] == 0]):
        raise UserError(f"class(es) {spans(untested)} of {name} have no test images: add "
                        "test images of every class (or leave the class out of the training data)")
    few = [c for c in range(k) if train[c] < MIN_IMAGES_PER_CLASS]
    if few:
        raise UserError(f"class(es) {_counted(few, train)} of {name} have fewer than "
                        f"{MIN_IMAGES_PER_CLASS} training images: add images to each class or "
                        "remove the class")

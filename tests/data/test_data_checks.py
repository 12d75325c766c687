"""Data checked before any work: labels 0..K-1, every class trained and tested, at least
``MIN_IMAGES_PER_CLASS`` training images each; usable but odd folders (grayscale and colour mixed,
an empty class folder) are read with a one-line note saying what was done."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from directnas.data.checks import MIN_IMAGES_PER_CLASS, check_dataset, spans
from directnas.data.readers import load_dataset
from directnas.data.sources import as_dataset
from directnas.errors import UserError


def _folder(root: Path, spec: dict[str, dict[str, int]], colour=lambda split, c, i: False) -> Path:
    rng = np.random.default_rng(0)
    for split, classes in spec.items():
        for c, n in classes.items():
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                im = Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8))
                (im.convert("RGB") if colour(split, c, i) else im).save(root / split / c / f"{i}.png")
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("first_grey", [True, False])
def test_a_mixed_grayscale_and_colour_folder_is_read_as_rgb_with_a_note(tmp_path, caplog, first_grey):
    """Whichever comes first, every image is RGB (a grey one as three equal channels), said once
    when decoded and again when read from the cache."""
    spec = {"train": {"a": 3, "b": 3}, "test": {"a": 2, "b": 2}}
    grey = {("train", "a", 0)} if first_grey else {("train", "b", 1), ("test", "a", 0)}
    root = _folder(tmp_path / "mixed", spec, lambda *k: k not in grey)
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            ds = as_dataset(str(root))
        notes = [r.getMessage() for r in caplog.records if "mixes grayscale and colour" in r.getMessage()]
        assert notes == [f"image folder {root} mixes grayscale and colour images: its {len(grey)} "
                         "grayscale image(s) are read as RGB (3 channels)"]
        assert ds.input_shape == (3, 16, 16)
    x = ds.train.images[0 if first_grey else 4]  # the first grey training image
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_an_empty_class_folder_is_left_out_with_a_note(tmp_path, caplog):
    root = _folder(tmp_path / "f", {"train": {"a": 3, "b": 0, "c": 3}, "test": {"a": 1, "b": 0, "c": 1}})
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert ds.train.num_classes == 2 and sorted(set(ds.train.labels.tolist())) == [0, 1]
    assert any("class folder(s) b hold no images: left out (2 classes)" in r.getMessage()
               for r in caplog.records)


def _tensors(train: list[int], test: list[int] | None = None) -> tuple:
    def pair(labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.rand(len(labels), 1, 8, 8), torch.tensor(labels)

    return pair(train), (pair(test) if test is not None else None)


@pytest.mark.parametrize("train,test,message", [
    ([0, 0, 1, 1, 2, 2, 7, 99], None, "no image has label 3-6, 8-98, yet label(s) 7 (1 image), 99 (1 image)"),
    ([0, 0, 2, 2], None, "no image has label 1, yet label(s) 2 (2 images)"),
    ([0, 0, 1, 1], [0, 1, 2], "class(es) 2 of the data given have test images but no training images"),
    ([0, 0, 1, 1, 2, 2], [0, 1], "class(es) 2 of the data given have no test images"),
    ([0, 0, 1, 1, 2], [0, 1, 2], "class(es) 2 (1 image) of the data given have fewer than 2 training"),
])
def test_labels_and_classes_are_checked(train, test, message):
    data, held = _tensors(train, test)
    with pytest.raises(UserError) as e:
        as_dataset(data, held)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_good_labels_pass_and_the_minimum_is_two_images_per_class():
    assert MIN_IMAGES_PER_CLASS == 2
    data, held = _tensors([0, 0, 1, 1, 2, 2], [0, 1, 2])
    ds = as_dataset(data, held)
    check_dataset(ds)
    assert ds.train.num_classes == 3
    assert spans([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"

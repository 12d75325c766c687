"""Augmentation scaled to the resolution: random resized crops (batched, seeded) from 48 px,
the 2-pixel pad-and-crop below."""

from __future__ import annotations

import pytest
import torch

from directnas.data.augment import RESIZED_CROP_FROM, crop_kind, random_resized_crop
from directnas.data.datasets import Batches, ImageData
from directnas.errors import UserError


def _photos(n: int = 16, size: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_resized_crop_keeps_shape_and_dtype(dtype):
    x = _photos().to(dtype)
    y = random_resized_crop(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == dtype
    assert float(y.float().min()) >= 0 and float(y.float().max()) <= 255


def test_two_draws_differ_and_a_seed_reproduces_them():
    x = _photos()
    g = torch.Generator().manual_seed(3)
    a, b = random_resized_crop(x, g), random_resized_crop(x, g)
    assert not torch.equal(a, b)
    again = random_resized_crop(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, again)


def test_a_full_crop_without_flip_is_the_image():
    x = _photos(4, 64).float()
    y = random_resized_crop(x, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1, 1),
                            flip=False)
    assert torch.allclose(y, x, atol=1e-3)
    mirrored = random_resized_crop(x, torch.Generator().manual_seed(1), scale=(1.0, 1.0),
                                   ratio=(1, 1))
    assert all(torch.allclose(m, i, atol=1e-3) or torch.allclose(m, i.flip(-1), atol=1e-3)
               for m, i in zip(mirrored, x))


def test_the_crop_follows_the_resolution():
    assert crop_kind("auto", 28) == "pad" and crop_kind("auto", 32) == "pad"
    assert crop_kind("auto", RESIZED_CROP_FROM) == "resized" and crop_kind("auto", 96) == "resized"
    assert crop_kind("pad", 96) == "pad"
    data = ImageData(_photos(64, 96), torch.zeros(64, dtype=torch.long), 1)
    small = ImageData(_photos(64, 28), torch.zeros(64, dtype=torch.long), 1)
    kw = dict(batch_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, augment=True, seed=0)
    assert Batches(data, **kw).crop == "resized" and Batches(small, **kw).crop == "pad"
    x1, _ = next(iter(Batches(data, **kw)))
    x2, _ = next(iter(Batches(data, **kw)))
    assert x1.shape == (16, 3, 96, 96) and x1.dtype == torch.float32 and torch.equal(x1, x2)
    with pytest.raises(UserError, match="crop 'zoom'"):
        Batches(data, crop="zoom", **kw)

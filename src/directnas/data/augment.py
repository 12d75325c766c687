"""Batched augmentation of photos: random resized crops (with the horizontal flip in the same
sampling pass), one ``affine_grid`` + ``grid_sample`` call for the whole batch.

Which crop a batch gets depends on its resolution (``crop_kind``): images of
``RESIZED_CROP_FROM`` (48) px and more get random resized crops, smaller ones the 2-pixel
pad-and-crop of ``datasets.Batches`` (a 28-32 px recipe: a crop of a third of a 28-px digit
leaves too little of it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RESIZED_CROP_FROM = 48  # px: inputs at least this large get random resized crops
CROP_SCALE = (0.35, 1.0)  # area of a crop, as a fraction of the image's (ImageNet's 0.08 is
# for large nets and a million images: a small net on a small photo set keeps more of the object)
CROP_RATIO = (3 / 4, 4 / 3)  # aspect ratio (width / height) of a crop, drawn log-uniformly
CROPS = ("auto", "pad", "resized")


def crop_kind(crop: str, size: int) -> str:
    """``pad`` or ``resized`` for images of ``size`` px (``crop`` ``auto``: by the size)."""
    if crop != "auto":
        return crop
    return "resized" if size >= RESIZED_CROP_FROM else "pad"


def random_resized_crop(x: torch.Tensor, generator: torch.Generator, *,
                        scale: tuple[float, float] = CROP_SCALE,
                        ratio: tuple[float, float] = CROP_RATIO,
                        flip: bool = True) -> torch.Tensor:
    """Each image of ``x`` (B, C, H, W) cropped and resized back to H x W (bilinear): a crop of
    a fraction of the area drawn uniformly in ``scale``, of aspect ratio drawn log-uniformly in
    ``ratio`` (the crop is clipped to the image), at a uniform position; with ``flip`` each
    crop is mirrored with probability 1/2.  Same shape and dtype as ``x`` (uint8 is rounded).
    The draws come from ``generator`` alone: the same seed gives the same crops."""
    b, c, h, w = x.shape
    g = generator
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(b, generator=g)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(lo + (hi - lo) * torch.rand(b, generator=g))
    # the crop's width and height as fractions of the image's, its centre in [-1, 1] coordinates
    cw = (area * r).sqrt().clamp(max=1.0)
    ch = (area / r).sqrt().clamp(max=1.0)
    cx = (2 * torch.rand(b, generator=g) - 1) * (1 - cw)
    cy = (2 * torch.rand(b, generator=g) - 1) * (1 - ch)
    mirror = torch.rand(b, generator=g) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.where(mirror, -cw, cw)
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = ch
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    y = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border",
                      align_corners=False)
    return y if x.is_floating_point() else y.round().clamp(0, 255).to(x.dtype)

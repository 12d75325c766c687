"""LeNet-300-100 (an MLP) and LeNet-5 (Caffe's variant), the Deep Compression paper's MNIST nets.

Both take any ``input_shape``: LeNet-300-100 flattens the image, LeNet-5's first linear layer is
sized from the conv output.
"""

from __future__ import annotations

from torch import nn

from directnas.errors import UserError
from directnas.models.registry import register


@register("lenet-300-100")
def lenet_300_100(*, input_shape: tuple[int, int, int], num_classes: int) -> nn.Sequential:
    c, h, w = input_shape
    return nn.Sequential(
        nn.Flatten(),                       # (B, C*H*W)
        nn.Linear(c * h * w, 300), nn.ReLU(inplace=True),
        nn.Linear(300, 100), nn.ReLU(inplace=True),
        nn.Linear(100, num_classes),
    )


@register("lenet-5")
def lenet_5(*, input_shape: tuple[int, int, int], num_classes: int) -> nn.Sequential:
    c, h, w = input_shape
    oh, ow = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
    if oh < 1 or ow < 1:
        raise UserError(f"lenet-5 needs images of at least 12x12, got {h}x{w}: use lenet-300-100")
    return nn.Sequential(
        nn.Conv2d(c, 20, 5), nn.MaxPool2d(2),      # (B, 20, (H-4)/2, (W-4)/2)
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),     # (B, 50, oh, ow)
        nn.Flatten(),
        nn.Linear(50 * oh * ow, 500), nn.ReLU(inplace=True),
        nn.Linear(500, num_classes),
    )

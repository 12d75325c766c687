"""A trained net for inference: ``Classifier`` (normalises inside) and ``load``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn



class Classifier(nn.Module):
    """``net`` behind the normalisation it was trained with: takes (N, C, H, W) floats in
    [0, 1] (``ToTensor()``'s images) and returns logits (N, classes)."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in [0, 1] -> (N, classes)
        return self.net((x - self.mean) / self.std)


def load(path: str | Path) -> nn.Module:
    """The trained net of a run folder, a ``train/`` folder or a ``model.pt``: eval mode,
    float32, on the CPU; its forward takes (N, C, H, W) images as floats in [0, 1]."""
    from directnas.models.model_file import ModelFile

    return ModelFile.read(path).classifier()

"""A trained net for inference: ``Classifier`` (normalises inside) and ``load``."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from directnas.errors import UserError


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


def _model_file(path: Path) -> Path:
    """``path`` itself, ``path/model.pt`` or a run folder's ``path/train/model.pt``."""
    if path.is_file():
        return path
    for candidate in (path / "model.pt", path / "train" / "model.pt"):
        if candidate.is_file():
            return candidate
    targets = sorted(p.parent.parent.name for p in path.glob("t*/train/model.pt"))
    if targets:
        raise UserError(f"run folder {path} holds one model per target ({', '.join(targets)}): "
                        f"load one of them, e.g. {path / targets[0]}")
    raise UserError(f"no model at {path}: give a model.pt written by directnas train, its folder "
                    "or a directnas run folder")


def load(path: str | Path) -> nn.Module:
    """The trained net of a run folder, a ``train/`` folder or a ``model.pt``: eval mode,
    float32, on the CPU; its forward takes (N, C, H, W) images as floats in [0, 1]."""
    from directnas.models.model_file import load_model

    net, ck = load_model(_model_file(Path(path)))
    mean, std = ck.get("mean"), ck.get("std")
    if mean is None or std is None:
        raise UserError(f"{path} does not record the normalisation it was trained with: re-train it")
    return Classifier(net.float(), mean, std).eval()

"""The ``model.pt`` file: ``ModelFile`` is its contents, ``ModelFile.save`` its one writer and
``ModelFile.read`` its one reader (``directnas train`` and ``directnas compress`` write it;
``directnas.load``, export, compress and the report read it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from directnas.errors import UserError
from directnas.models.registry import build_named
from directnas.models.structure import apply_structure, attach_act_quant
from directnas.space.arch import Arch
from directnas.utils.fileio import torch_load, torch_save

KIND = "directnas-model"


@dataclass
class ModelFile:
    """What a ``model.pt`` holds: enough to rebuild the net and to use it on images."""

    name: str                          # "searched:<space>", a named model or a module's class name
    input_shape: tuple[int, ...]       # (C, H, W) the net takes
    num_classes: int
    state_dict: dict[str, torch.Tensor]
    mean: Sequence[float] | None = None  # the normalisation the net was trained with (per channel)
    std: Sequence[float] | None = None
    arch: dict[str, Any] | None = None  # ``Arch.to_dict()`` of a net built from a search space
    model: str | None = None           # the registry name of a named model
    recipe: dict[str, Any] = field(default_factory=dict)  # training options compression reuses
    compression: dict[str, Any] | None = None  # methods, structure (lowrank, act_fl), source

    @classmethod
    def of(cls, net: nn.Module, **kv: Any) -> "ModelFile":
        """The record of ``net``'s weights (detached CPU copies) and the fields in ``kv``."""
        sd = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return cls(state_dict=sd, **kv)

    def save(self, path: str | Path) -> Path:
        """Write the record to ``path`` (atomically)."""
        torch_save(path, {"kind": KIND, **{f.name: getattr(self, f.name) for f in fields(self)}})
        return Path(path)

    @classmethod
    def read(cls, path: str | Path) -> "ModelFile":
        """The record of a model.pt, its folder, or a run folder's ``train/model.pt``."""
        p = find_model_file(Path(path))
        _not_json(p)
        ck = torch_load(p, what="model")
        if not isinstance(ck, dict) or ck.get("kind") != KIND:
            raise UserError(f"{p} is not a model written by 'directnas train': train one first")
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in ck.items() if k in known and v is not None})
        except TypeError as e:
            raise UserError(f"{p} lacks what a model file holds ({e}): re-train it") from None

    def build(self) -> nn.Module:
        """The net with its weights (and compression structure), in eval mode."""
        if self.arch:
            net = Arch.from_dict(self.arch).build()
        elif self.model:
            net = build_named(self.model, input_shape=tuple(self.input_shape),
                              num_classes=self.num_classes)
        else:
            raise UserError(f"model {self.name} names neither an architecture nor a named model: "
                            "keep the module it was trained as")
        structure = (self.compression or {}).get("structure", {})
        apply_structure(net, structure.get("lowrank", {}))
        try:
            net.load_state_dict(self.state_dict)
        except RuntimeError as e:
            raise UserError(f"model {self.name}: weights do not fit the model "
                            f"({str(e).splitlines()[0]}): re-train it") from None
        attach_act_quant(net, structure.get("act_fl", {}))
        return net.eval()

    def classifier(self) -> nn.Module:
        """``build()`` behind its normalisation: float32, eval mode, takes images in [0, 1]."""
        from directnas.models.classifier import Classifier

        if self.mean is None or self.std is None:
            raise UserError(f"model {self.name} does not record the normalisation it was trained "
                            "with: re-train it")
        return Classifier(self.build().float(), self.mean, self.std).eval()


def _not_json(path: Path) -> None:
    """A JSON file given as a model (an arch.json, most often) is named for what it is."""
    import json

    try:
        with open(path, "rb") as f:
            head = f.read(1).lstrip()
        d = json.loads(path.read_text()) if head == b"{" else None
    except (OSError, ValueError):
        return
    if isinstance(d, dict) and "layers" in d and "space" in d:
        raise UserError(f"{path} is an architecture (arch.json), not a trained model: train it "
                        f"first (directnas train --arch {path} --out DIR) and give DIR")
    if d is not None:
        raise UserError(f"{path} is a JSON file, not a model: give a model.pt written by "
                        "'directnas train', its folder or a run folder")


def find_model_file(path: Path) -> Path:
    """``path`` itself, ``path/model.pt`` or a run folder's ``path/train/model.pt``."""
    if path.is_file():
        return path
    if not path.exists():
        raise UserError(f"model {path} not found: give a model.pt written by 'directnas train', "
                        "its folder or a directnas run folder")
    for candidate in (path / "model.pt", path / "train" / "model.pt"):
        if candidate.is_file():
            return candidate
    targets = sorted(p.parent.parent.name for p in path.glob("t*/train/model.pt"))
    if targets:
        raise UserError(f"run folder {path} holds one model per target ({', '.join(targets)}): "
                        f"load one of them, e.g. {path / targets[0]}")
    raise UserError(f"no model at {path}: give a model.pt written by directnas train, its folder "
                    "or a directnas run folder")


def load_model(path: str | Path) -> tuple[nn.Module, ModelFile]:
    """(the net in eval mode, its record) from a model.pt or a folder holding one."""
    mf = ModelFile.read(path)
    return mf.build(), mf

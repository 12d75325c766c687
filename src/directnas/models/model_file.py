"""Load a ``model.pt`` written by ``directnas train`` (or by ``directnas compress``) as a net."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from directnas.errors import UserError
from directnas.utils.fileio import torch_load
from directnas.models.registry import build_named
from directnas.models.structure import apply_structure, attach_act_quant
from directnas.space.arch import Arch


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(net in eval mode, the checkpoint dict) from a model.pt or the run folder holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.exists():
        raise UserError(f"model {path} not found: give a model.pt written by 'directnas train' "
                        "or its run folder")
    ck = torch_load(p)
    if not isinstance(ck, dict) or ck.get("kind") != "directnas-model":
        raise UserError(f"{p} is not a model written by 'directnas train': train one first")
    if ck.get("arch"):
        net = Arch.from_dict(ck["arch"]).build()
    elif ck.get("model"):
        net = build_named(ck["model"], input_shape=tuple(ck["input_shape"]),
                          num_classes=ck["num_classes"])
    else:
        raise UserError(f"{p} names neither an architecture nor a model: re-train it")
    structure = (ck.get("compression") or {}).get("structure", {})
    apply_structure(net, structure.get("lowrank", {}))
    try:
        net.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{p}: weights do not fit the model ({str(e).splitlines()[0]}): re-train it") from None
    attach_act_quant(net, structure.get("act_fl", {}))
    return net.eval(), ck

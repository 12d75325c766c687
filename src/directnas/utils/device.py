"""Where tensors live: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when there is one)."""

from __future__ import annotations

import os

import torch

from directnas.errors import UserError

DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` of ``spec``; under torchrun a bare ``cuda`` is this rank's GPU
    (``cuda:LOCAL_RANK``)."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    s = (spec or "auto").strip().lower()
    if s == "auto":
        s = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(s)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown device {spec!r}: use one of {', '.join(DEVICES)}") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise UserError(f"device {spec!r} is not supported: use one of {', '.join(DEVICES)}")
    if not torch.cuda.is_available():
        raise UserError(f"device {spec!r} asked for, but this machine (or this torch build) has no "
                        "CUDA GPU: pass --device cpu (or auto)")
    index = dev.index if dev.index is not None else int(os.environ.get("LOCAL_RANK", "0"))
    if index >= torch.cuda.device_count():
        raise UserError(f"device {spec!r}: this machine has {torch.cuda.device_count()} GPU(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """Mixed precision (bfloat16 autocast, no loss scaling needed) on CUDA when ``enabled``."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=enabled and device.type == "cuda")


def check_amp(device: torch.device, amp: bool) -> None:
    if amp and device.type != "cuda":
        raise UserError(f"amp (mixed precision) runs on CUDA only, not on {device}: drop --amp "
                        "or pass --device cuda")

"""Hardware-aware loss: cross-entropy plus a term in the expected latency E[LAT].

Forms (T = target latency in ms):
  * ``add``      CE + lambda * (E[LAT] - T) / T                 (official lambda 0.1)
  * ``mul``      scale * CE * (log E[LAT] / log T) ** beta       (official scale 0.2, beta 0.3)
  * ``hinge``    CE + lambda * max(0, E[LAT] - T) / T: latency only pushes while over budget,
                 so the search settles near T instead of being pushed ever lower (the default).
  * ``lagrange`` CE + lambda * (E[LAT] - T) / T with lambda raised while E[LAT] > T and lowered
                 (to >= 0) while below (dual ascent on the constraint).
  * ``none``     CE only (no target given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from directnas.errors import UserError

LOSS_FORMS = ("hinge", "add", "mul", "lagrange", "none")


@dataclass
class HardwareLoss:
    form: str = "hinge"
    target_ms: float | None = None
    lam: float = 0.1
    beta: float = 0.3
    mul_scale: float = 0.2
    lagrange_rate: float = 0.05
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.form not in LOSS_FORMS:
            raise UserError(f"unknown loss form {self.form!r}: use one of {', '.join(LOSS_FORMS)}")
        if self.target_ms is None:
            self.form = "none"
        elif self.target_ms <= 0:
            raise UserError(f"target latency must be > 0 ms, got {self.target_ms}")
        elif self.form == "mul" and self.target_ms <= 1.0:
            raise UserError("the 'mul' loss uses log(T): give a target above 1 ms or use --loss add")

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor,
                 expected_latency_ms: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        info: dict[str, float] = {"ce": float(ce.detach())}
        if self.form == "none" or expected_latency_ms is None:
            return ce, info
        t = float(self.target_ms)  # type: ignore[arg-type]
        lat = expected_latency_ms
        info["expected_latency_ms"] = float(lat.detach())
        if self.form == "mul":
            loss = self.mul_scale * ce * (torch.log(lat) / math.log(t)) ** self.beta
        elif self.form == "hinge":
            loss = ce + self.lam * torch.relu(lat - t) / t
        else:
            loss = ce + self.lam * (lat - t) / t
            if self.form == "lagrange":  # dual ascent on the constraint E[LAT] <= T
                self.lam = max(0.0, self.lam + self.lagrange_rate * float((lat.detach() - t) / t))
                info["lambda"] = self.lam
        return loss, info

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.lam = float(d["lam"])

"""A learned linear correction of the table's sum, fitted on measured whole networks.

The table predicts ``fixed + sum of entries``; real networks add per-layer overheads (framework
dispatch, memory traffic between ops) and lose some (fusion across op boundaries).  The
correction is a linear model on per-layer features::

    corrected = intercept + c_sum * (fixed + sum_ms) + c_layers * layers + sum_s c_s * stage_s_ms

``sum_ms``: the table's sum over searchable layers; ``layers``: how many of them are not
``zero``; ``stage{s}_ms``: the table's sum over the layers of stage ``s``.  Every feature is a
sum over layers, so the model folds into per-op costs (``op_ms``) and the search's expected
latency E[LAT] stays a differentiable sum with the correction in it.

JSON (stored in the latency table under ``"correction"``)::

    {"kind": "linear", "features": ["sum_ms", "layers"], "coef": [0.97, 0.05],
     "intercept": 0.12, "fit": {"samples": 16, "backend": "torch-cpu", ...}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from directnas.errors import UserError

FEATURE_SETS = ("basic", "stages")
_STAGE_RE = re.compile(r"^stage(\d+)_ms$")


def feature_names(kind: str, n_stages: int) -> list[str]:
    if kind not in FEATURE_SETS:
        raise UserError(f"unknown correction features {kind!r}: "
                        f"use one of {', '.join(FEATURE_SETS)}")
    names = ["sum_ms", "layers"]
    if kind == "stages":
        names += [f"stage{s}_ms" for s in range(n_stages)]
    return names


def features(fixed_ms: float, layers: list[tuple[int, float, bool]],
             names: list[str]) -> list[float]:
    """Feature vector of one network; ``layers``: (stage, table ms, not zero) per layer."""
    out = []
    for name in names:
        if name == "sum_ms":
            out.append(fixed_ms + sum(ms for _, ms, _ in layers))
        elif name == "layers":
            out.append(float(sum(nz for _, _, nz in layers)))
        else:
            s = int(_STAGE_RE.match(name)[1])  # type: ignore[index]
            out.append(sum(ms for st, ms, _ in layers if st == s))
    return out


@dataclass
class Correction:
    features: list[str]
    coef: list[float]
    intercept: float
    fit: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.features) != len(self.coef):
            raise UserError("latency correction: 'features' and 'coef' differ in length: refit it")
        for name in self.features:
            if name not in ("sum_ms", "layers") and not _STAGE_RE.match(name):
                raise UserError(f"latency correction: unknown feature {name!r}: refit it with "
                                "'directnas latency validate --fit-correction'")

    def _c(self, name: str) -> float:
        return self.coef[self.features.index(name)] if name in self.features else 0.0

    def fixed_ms(self, fixed: float) -> float:
        """Corrected cost of the fixed layers (the intercept goes here)."""
        return self.intercept + self._c("sum_ms") * fixed

    def op_ms(self, stage: int, ms: float, *, zero: bool) -> float:
        """Corrected cost of one op in ``stage`` whose table entry is ``ms`` (>= 0)."""
        if zero:
            return 0.0
        return max(0.0, (self._c("sum_ms") + self._c(f"stage{stage}_ms")) * ms + self._c("layers"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "linear", "features": list(self.features), "coef": list(self.coef),
                "intercept": self.intercept, "fit": dict(self.fit)}

    @classmethod
    def from_dict(cls, d: Any) -> "Correction":
        if not isinstance(d, dict) or d.get("kind") != "linear":
            raise UserError("latency table: 'correction' must be {'kind': 'linear', ...}: refit it "
                            "with 'directnas latency validate --fit-correction'")
        try:
            return cls([str(f) for f in d["features"]], [float(c) for c in d["coef"]],
                       float(d["intercept"]), dict(d.get("fit", {})))
        except (KeyError, TypeError, ValueError):
            raise UserError("latency table: 'correction' needs features, coef and intercept: refit "
                            "it with 'directnas latency validate --fit-correction'") from None

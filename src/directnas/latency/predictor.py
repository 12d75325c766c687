"""Predict a network's latency from a table: fixed layers + the sum of its ops' entries, plus the
table's learned correction when it has one (``hardware/correction.py``)."""

from __future__ import annotations

from typing import Sequence

from directnas.errors import UserError
from directnas.latency.correction import Correction, feature_names, features
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch
from directnas.space.ops import ZERO
from directnas.space.space import SearchSpace


def predict_arch_ms(arch: Arch, table: LatencyTable, *, corrected: bool = True) -> float:
    """Predicted latency (ms); the same per-op costs the search's E[LAT] uses."""
    space = arch.space
    fixed, per_layer = table.space_latencies(space, corrected=corrected)
    return fixed + sum(row[layer.candidates.index(op)]
                       for layer, op, row in zip(space.layers, arch.ops, per_layer))


def fastest_ms(space: SearchSpace, table: LatencyTable) -> float:
    """Predicted latency of the fastest net of ``space``: the cheapest candidate at every layer."""
    fixed, per_layer = table.space_latencies(space)
    return fixed + sum(min(row) for row in per_layer)


def arch_features(arch: Arch, table: LatencyTable, names: list[str]) -> list[float]:
    """The correction's features of ``arch`` from the table's raw entries."""
    space = arch.space
    fixed, per_layer = table.space_latencies(space, corrected=False)
    layers = [(l.stage, row[l.candidates.index(op)], op != ZERO)
              for l, op, row in zip(space.layers, arch.ops, per_layer)]
    return features(fixed, layers, names)


def fit_correction(archs: Sequence[Arch], measured_ms: Sequence[float], table: LatencyTable, *,
                   kind: str = "basic", ridge: float = 1e-3) -> Correction:
    """Least squares (ridge) from the table's features to measured whole-network latency."""
    if len(archs) != len(measured_ms) or not archs:
        raise ValueError("fit_correction needs one measurement per architecture")
    names = feature_names(kind, len(archs[0].space.stages))
    if len(archs) < len(names) + 2:
        raise UserError(f"fitting a {kind!r} correction needs at least {len(names) + 2} measured "
                        f"networks, got {len(archs)}: raise --samples")
    import numpy as np
    from sklearn.linear_model import Ridge

    x = np.array([arch_features(a, table, names) for a in archs])
    y = np.asarray(measured_ms, dtype=float)
    model = Ridge(alpha=ridge).fit(x, y)
    resid = y - model.predict(x)
    return Correction(names, [float(c) for c in model.coef_], float(model.intercept_),
                      {"samples": len(archs), "ridge": ridge,
                       "train_rmse_ms": float(np.sqrt(np.mean(resid ** 2)))})

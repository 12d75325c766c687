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


def call_floor_ms(table: LatencyTable) -> float:
    """The runtime's per-call cost (a null op, measured with the table): no net can run faster."""
    return float(table.meta.get("call_overhead_ms") or 0.0)


def solve_positive(x: "np.ndarray", y: "np.ndarray", *, floor: float, ridge: float
                   ) -> tuple["np.ndarray", float]:
    """Least squares ``y ~ intercept + x @ coef`` with every ``coef >= 0`` and
    ``intercept >= floor`` (a small ridge on ``coef``, scaled to the features)."""
    import numpy as np
    from scipy.optimize import lsq_linear

    n, k = x.shape
    scale = np.maximum(np.abs(x).max(axis=0), 1e-12)
    a = np.hstack([np.ones((n, 1)), x / scale])
    a = np.vstack([a, np.hstack([np.zeros((k, 1)), np.sqrt(ridge) * np.eye(k)])])
    b = np.concatenate([np.asarray(y, float), np.zeros(k)])
    lo = np.concatenate([[floor], np.zeros(k)])
    res = lsq_linear(a, b, bounds=(lo, np.full(k + 1, np.inf)), method="bvls")
    return res.x[1:] / scale, float(res.x[0])


def fit_correction(archs: Sequence[Arch], measured_ms: Sequence[float], table: LatencyTable, *,
                   kind: str = "basic", ridge: float = 1e-3) -> Correction:
    """Least squares from the table's features to measured whole-network latency, with every
    coefficient >= 0 and the intercept >= the runtime's per-call cost.

    So the correction keeps the table's order (a net whose ops all cost at least another's is
    predicted at least as slow), never predicts a net at or below the per-call cost, and cannot
    extrapolate below zero at the fast corner of the space, whatever range the nets it was
    fitted on span."""
    if len(archs) != len(measured_ms) or not archs:
        raise ValueError("fit_correction needs one measurement per architecture")
    names = feature_names(kind, len(archs[0].space.stages))
    if len(archs) < len(names) + 2:
        raise UserError(f"fitting a {kind!r} correction needs at least {len(names) + 2} measured "
                        f"networks, got {len(archs)}: raise --samples")
    import numpy as np

    x = np.array([arch_features(a, table, names) for a in archs])
    y = np.asarray(measured_ms, dtype=float)
    floor = call_floor_ms(table)
    coef, intercept = solve_positive(x, y, floor=floor, ridge=ridge)
    resid = y - (intercept + x @ coef)
    return Correction(names, [float(c) for c in coef], intercept,
                      {"samples": len(archs), "ridge": ridge, "form": "positive",
                       "floor_ms": floor, "train_rmse_ms": float(np.sqrt(np.mean(resid ** 2)))})

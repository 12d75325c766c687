"""Calibrate a latency table on whole nets: choose and fit the linear correction
(``latency.correction``) that best predicts nets the fit did not see; every fit keeps its
coefficients >= 0 and its intercept >= the per-call cost (``predictor.fit_correction``).

The candidates are the correction's feature sets (``basic``: table sum + layer count;
``stages``: plus one coefficient per stage); leave-one-out MAPE over the calibration nets picks
one, which is then refitted on all of them.  The chosen set and its leave-one-out MAPE are kept
in the correction's ``fit`` record.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from directnas.latency.correction import FEATURE_SETS, Correction, feature_names
from directnas.latency.table import LatencyTable
from directnas.errors import UserError
from directnas.latency.predictor import (arch_features, call_floor_ms, fastest_ms, fit_correction,
                                         solve_positive)
from directnas.space.arch import Arch


def loo_mape(archs: Sequence[Arch], measured: Sequence[float], table: LatencyTable,
             kind: str) -> float:
    """Leave-one-out MAPE (fraction) of a ``kind`` correction on these nets."""
    names = feature_names(kind, len(archs[0].space.stages))
    x = np.array([arch_features(a, table, names) for a in archs])
    y = np.asarray(measured, float)
    floor = call_floor_ms(table)
    errs = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        coef, intercept = solve_positive(x[keep], y[keep], floor=floor, ridge=1e-3)
        errs.append(abs(intercept + float(x[i] @ coef) - y[i]) / y[i])
    return float(np.mean(errs))


def fit_best_correction(archs: Sequence[Arch], measured: Sequence[float],
                        table: LatencyTable) -> Correction:
    """The feature set with the lowest leave-one-out MAPE, refitted on all nets."""
    n_stages = len(archs[0].space.stages)
    scores = {k: loo_mape(archs, measured, table, k) for k in FEATURE_SETS
              if len(archs) >= len(feature_names(k, n_stages)) + 3}
    if not scores:
        scores = {"basic": float("nan")}
    kind = min(scores, key=lambda k: scores[k] if scores[k] == scores[k] else np.inf)
    corr = fit_correction(archs, measured, table, kind=kind)
    corr.fit.update({"features_set": kind, "loo_mape": scores.get(kind),
                     "loo_mape_by_set": scores})
    space, floor = archs[0].space, call_floor_ms(table)
    fastest = fastest_ms(space, LatencyTable(table.meta, table.entries, corr))
    if not fastest > floor:
        raise UserError(f"the latency fit predicts the fastest net of space {space.name!r} at "
                        f"{fastest:.4f} ms, at or below the runtime's per-call cost {floor:.4f} ms: "
                        "re-profile with more --rounds on an idle machine")
    return corr

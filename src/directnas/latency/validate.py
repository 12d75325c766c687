"""Validate the predictor: random architectures, measured end to end, against the table's sum.

Measurements are interleaved and repeated: every round times every network (and, when no table
is given, every op of the table too) in a fresh shuffled order, and each network's latency is
its fastest round (``Protocol.across``), so a shared machine's drift hits table and networks
alike.
"""

from __future__ import annotations

import io
import logging
import math
import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from directnas.errors import UserError
from directnas.utils.fileio import write_bytes
from directnas.runtimes import Protocol
from directnas.latency.correction import feature_names
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import fit_correction, predict_arch_ms
from directnas.latency.measure import (CALIBRATION_NETS, NOISE, calibration_archs,
                                        measure_space, profile_space)
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace

log = logging.getLogger(__name__)


def sample_archs(space: SearchSpace, n: int, *, seed: int = 0) -> list[Arch]:
    """``n`` random architectures (each layer's op uniform over its candidates), distinct while
    the space has enough."""
    rng = random.Random(seed)
    out: list[Arch] = []
    seen: set[tuple[str, ...]] = set()
    for _ in range(n * 20):
        if len(out) == n:
            break
        ops = tuple(rng.choice(l.candidates) for l in space.layers)
        if ops not in seen or len(seen) >= space.num_archs():
            seen.add(ops)
            out.append(Arch(space, list(ops)))
    return out


def metrics(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """rmse_ms, mape (fraction), pearson_r, kendall_tau, bias (mean predicted/measured - 1)."""
    from scipy import stats

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    out = {"rmse_ms": float(np.sqrt(np.mean((p - m) ** 2))),
           "mape": float(np.mean(np.abs(p - m) / m)),
           "max_abs_err_ms": float(np.max(np.abs(p - m))),
           "bias": float(np.mean(p / m) - 1.0)}
    if len(p) >= 2 and np.ptp(p) > 0 and np.ptp(m) > 0:
        out["pearson_r"] = float(stats.pearsonr(p, m)[0])
        out["kendall_tau"] = float(stats.kendalltau(p, m)[0])
    else:
        out["pearson_r"] = out["kendall_tau"] = math.nan
    return out


def validate(space: SearchSpace, *, backend: str, proto: Protocol, samples: int,
             table: LatencyTable | None = None, rounds: int | None = None, seed: int = 0,
             fit: str | None = None, calibrate: int = CALIBRATION_NETS,
             progress: Callable[[Iterable], Iterable] = lambda it: it,
             ) -> tuple[dict[str, Any], LatencyTable]:
    """Measure ``samples`` random archs end to end; returns (report, table).  Without ``table``
    the space is profiled (ops + ``calibrate`` calibration nets, ``profile_space``) in the same
    interleaved rounds, and the random archs are held out: the figures (``mape``,
    ``kendall_tau``, ...) are those of the calibrated table on nets it was not fitted on.  With ``fit`` (a feature set of
    ``hardware.correction``) a correction is fitted on the first half of the archs and reported
    on the second; the returned table carries a correction refitted on all of them."""
    if samples < 2:
        raise UserError(f"--samples must be >= 2 to compute correlations, got {samples}")
    if fit is not None:
        need = 2 * (len(feature_names(fit, len(space.stages))) + 2)
        if samples < need:
            raise UserError(f"--fit-correction {fit} fits on half the archs: "
                            f"use --samples >= {need}")
    cal = calibration_archs(space, calibrate, seed=seed) if table is None else {}
    cal_ops = {tuple(a.ops) for a in cal.values()}
    archs = [a for a in sample_archs(space, samples + len(cal), seed=seed + 1)
             if tuple(a.ops) not in cal_ops][:samples]  # held out: none is a calibration net
    nets = {f"net{i}": a for i, a in enumerate(archs)}
    load_before = os.getloadavg()
    measured: dict[str, dict[str, float]] = {}
    if table is None:
        table = profile_space(space, backend=backend, proto=proto, rounds=rounds,
                              calibrate=calibrate, extra_nets=nets, seed=seed,
                              measured_out=measured, progress=progress)
        table.meta["measured_with"] = "validate"
    else:
        measured = measure_space(space, backend=backend, proto=proto, rounds=rounds, nets=nets,
                                 skip_ops=None, seed=seed, progress=progress)
    load_after = os.getloadavg()
    table.check_covers(space)
    nets = [measured[f"net{i}"] for i in range(len(archs))]
    meas = [n["ms"] for n in nets]
    raw = [predict_arch_ms(a, table, corrected=False) for a in archs]
    pred = [predict_arch_ms(a, table) for a in archs]
    report: dict[str, Any] = {
        "space": space.name, "backend": backend, "protocol": asdict(proto),
        "rounds": max(2, proto.rounds if rounds is None else rounds),
        "held_out": True, "calibration_nets": len(cal) if cal else None,
        "noise_floor": measured.get(NOISE, {}).get("noise_floor"),
        "reference_ms": measured.get(NOISE, {}).get("ms"),
        "seed": seed, "samples": len(archs), "table_digest": table.digest(),
        "table_meta": table.meta, "table_has_correction": table.correction is not None,
        **metrics(pred, meas),
        "mean_measured_ms": float(np.mean(meas)), "mean_predicted_ms": float(np.mean(pred)),
        "load_avg_1min": [load_before[0], load_after[0]],
        "pairs": [{"arch": a.summary(), "predicted_ms": p, "table_sum_ms": r,
                   "measured_ms": n["ms"], "measured_spread_ms": n["spread_ms"]}
                  for a, p, r, n in zip(archs, pred, raw, nets)],
    }
    if fit is not None:
        half = len(archs) // 2
        c = fit_correction(archs[:half], meas[:half], table, kind=fit)
        fitted = LatencyTable(table.meta, table.entries, c)
        test = archs[half:]
        report["holdout"] = {
            "fit_samples": half, "test_samples": len(test), "features": c.features,
            "raw": metrics([predict_arch_ms(a, table, corrected=False) for a in test], meas[half:]),
            "corrected": metrics([predict_arch_ms(a, fitted) for a in test], meas[half:]),
        }
        full = fit_correction(archs, meas, table, kind=fit)
        full.fit.update({"backend": backend, "holdout_mape": report["holdout"]["corrected"]["mape"],
                         "holdout_raw_mape": report["holdout"]["raw"]["mape"]})
        table = LatencyTable(table.meta, table.entries, full)
        report["correction"] = full.to_dict()
    log.info("validate %s on %s: mape %.3f tau %.3f", space.name, backend, report["mape"],
             report["kendall_tau"])
    return report, table


def scatter_plot(report: dict[str, Any], path: str | Path) -> None:
    """Predicted vs measured (ms), with the y = x line, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = report["pairs"]
    meas = [p["measured_ms"] for p in pairs]
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.scatter(meas, [p["table_sum_ms"] for p in pairs], s=14, label="table sum")
    if report.get("table_has_correction"):
        ax.scatter(meas, [p["predicted_ms"] for p in pairs], s=14, marker="x", label="corrected")
    lo = min(meas + [p["predicted_ms"] for p in pairs] + [p["table_sum_ms"] for p in pairs])
    hi = max(meas + [p["predicted_ms"] for p in pairs] + [p["table_sum_ms"] for p in pairs])
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel("predicted (ms)")
    ax.set_title(f"{report['space']} / {report['backend']}: MAPE {100 * report['mape']:.1f} %, "
                 f"tau {report['kendall_tau']:.2f}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes(path, buf.getvalue())

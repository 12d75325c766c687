"""Rebuild the NAS-Bench-Macro latency table from the predictions of all 6,561 nets.

``nas_bench_macro.py`` commits the predicted latency of every net of the space (``latency_ms``)
but its work folder (``latency.json``, ``validate.json``) is not committed.  The calibrated
table's prediction is additive (fixed part + one corrected cost per layer and op), so the 6,561
predictions determine every layer's op costs up to one constant per layer: a least-squares fit on
the one-hot ops recovers them (max residual ~5e-6 ms: the 5 decimals they are stored with).  The
skip op of each layer is anchored at 0 and its cost moved into the fixed part; every net's total,
and the search's E[LAT] under any op distribution, is unchanged.  The held-out and calibration
timings are copied from the results, so ``--latency-from OUT`` reproduces the searches' table::

    python benchmarks/nas_bench_macro_rebuild_table.py \\
        --results benchmarks/results/nas_bench_macro.json --out benchmarks/results/nas_bench_macro_table
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from directnas.latency.correction import Correction
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.table import LatencyTable
from directnas.space.nas_bench_macro import NUM_LAYERS, bench_space, from_bench_string
from directnas.utils.fileio import read_json, write_json


def rebuild(results: dict[str, Any], source: str) -> tuple[LatencyTable, dict[str, Any], float]:
    lat, summary, space = results["latency_ms"], results["latency"], bench_space()
    strings = sorted(lat)
    x = np.zeros((len(strings), 1 + 2 * NUM_LAYERS))
    x[:, 0] = 1.0
    for row, s in enumerate(strings):
        for i, d in enumerate(s):
            if d != "0":
                x[row, 1 + 2 * i + int(d) - 1] = 1.0
    y = np.array([lat[s] for s in strings])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    fixed_keys = space.fixed_keys()
    entries = {k: {"ms": float(coef[0]) if j == 0 else 0.0, "spread_ms": 0.0}
               for j, k in enumerate(fixed_keys)}
    for layer in space.layers:
        for j, key in enumerate(space.layer_keys(layer)):
            ms = 0.0 if j == 0 else max(0.0, float(coef[1 + 2 * layer.index + j - 1]))
            entries.setdefault(key, {"ms": ms, "spread_ms": 0.0})
            entries[f"L{layer.index}:{key}"] = {"ms": ms, "spread_ms": 0.0}
    measured = [{"ops": list(from_bench_string(space, s).ops), "ms": ms}
                for s, ms in summary["measured_ms"]["calibration"].items()]
    corr = Correction(["sum_ms"], [1.0], 0.0, {
        "measured": measured, "rebuilt_from": source,
        "note": "the per-layer costs of the calibrated table, rebuilt from its 6,561 predictions"})
    meta = {"backend": summary["backend"], "device": summary["device"],
            "measured_at": summary["measured_at"], "call_overhead_ms": summary["call_overhead_ms"],
            **summary["protocol"], "rebuilt_from": source}
    table = LatencyTable(meta, entries, corr)
    err = max(abs(predict_arch_ms(from_bench_string(space, s), table) - lat[s]) for s in strings)
    pairs = [{"arch": " ".join(from_bench_string(space, s).ops), "measured_ms": ms,
              "predicted_ms": lat[s]} for s, ms in summary["measured_ms"]["held_out"].items()]
    report = {"protocol": summary["protocol"], "samples": summary["held_out_nets"],
              "mape": summary["mape"], "kendall_tau": summary["kendall_tau"],
              "noise_floor": summary["noise_floor"], "pairs": pairs, "rebuilt_from": source}
    return table, report, err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="nas_bench_macro.py's results JSON")
    ap.add_argument("--out", required=True, help="folder for latency.json + validate.json")
    a = ap.parse_args()
    table, report, err = rebuild(read_json(a.results), a.results)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    table.save(out / "latency.json")
    write_json(out / "validate.json", report)
    print(f"rebuilt {out / 'latency.json'}: largest difference to the stored predictions "
          f"{err:.2e} ms")


if __name__ == "__main__":
    main()

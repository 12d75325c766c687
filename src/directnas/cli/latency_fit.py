"""directnas latency fit: a latency table fitted to whole-network measurements (CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.pipeline.outdir import check_out_file
from directnas.latency.fit import (MODELS, fit_model, metrics, parse_rows, predict_table,
                                   read_measurements, to_table)
from directnas.space.space import load_space


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fit", help="fit a latency table from whole-network measurements (CSV)")
    p.add_argument("--space", required=True, help="preset name or YAML path")
    p.add_argument("--measurements", required=True,
                   help="CSV with op_idx_list (or ops) and a latency column in ms")
    p.add_argument("--column", required=True, help="latency column to fit, e.g. pixel2")
    p.add_argument("--rows", help="training rows A:B (A inclusive, B exclusive, 0-based)")
    p.add_argument("--model", choices=MODELS, default="additive",
                   help="ls | additive (ridge, default) | robust (min MAPE) | +gbm (non-additive "
                        "trees on top) | auto (blocked CV on these rows picks per device)")
    p.add_argument("--out", required=True, help="latency table JSON to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out)
    space = load_space(args.space)
    rows = parse_rows(args.rows)
    m = read_measurements(args.measurements, space, args.column, rows)
    fitted = fit_model(space, m.idx, m.ms, args.model)
    table = to_table(space, fitted, {"device": args.column, "source": str(args.measurements),
                                     "rows": [rows[0], rows[0] + len(m.ms)],
                                     "samples": int(len(m.ms))})
    train = metrics(predict_table(table, space, m.idx), m.ms)
    table.meta["fit"]["train"] = train
    table.save(args.out)
    name = f"auto -> {fitted.name}" if "auto" in fitted.additive.info else fitted.name
    print(f"fitted {name} model on {len(m.ms)} networks ({args.column}): constant "
          f"{fitted.additive.constant:.3f} ms, train MAPE {100 * train['mape']:.2f} %, "
          f"Kendall tau {train['kendall_tau']:.3f}")
    print(f"latency table: {Path(args.out).resolve()}")
    return 0

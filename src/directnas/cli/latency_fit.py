"""directnas latency fit | evaluate | design: latency tables from whole-network measurements."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from directnas.errors import UserError
from directnas.utils.fileio import write_json, write_text
from directnas.latency.fit import (MODELS, balanced_design, design_rows, fit_model, metrics,
                                    parse_rows, predict_table, read_measurements, table_space,
                                    to_table)
from directnas.latency.table import LatencyTable
from directnas.space.space import load_space


def add_parsers(sub: argparse._SubParsersAction) -> None:
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
    p.set_defaults(func=run_fit)

    p = sub.add_parser("evaluate", help="error of a table against whole-network measurements")
    p.add_argument("--table", required=True, help="latency table JSON")
    p.add_argument("--measurements", required=True, help="CSV as for 'latency fit'")
    p.add_argument("--column", required=True, help="latency column, e.g. pixel2")
    p.add_argument("--rows", help="rows A:B to test on (A inclusive, B exclusive, 0-based)")
    p.add_argument("--space", help="space (default: the one stored in a fitted table)")
    p.add_argument("--out", help="JSON file for samples, mape, rmse_ms, kendall_tau")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("design", help="write which architectures to time (balanced over (layer, op))")
    p.add_argument("--space", required=True, help="preset name or YAML path")
    p.add_argument("--n", type=int, required=True, help="number of architectures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="archs.csv or archs.json")
    p.set_defaults(func=run_design)


def run_fit(args: argparse.Namespace) -> int:
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


def run_evaluate(args: argparse.Namespace) -> int:
    table = LatencyTable.load(args.table)
    space = table_space(table, load_space(args.space) if args.space else None)
    table.check_covers(space, path=args.table)
    m = read_measurements(args.measurements, space, args.column, parse_rows(args.rows))
    res = {"table": str(args.table), "column": args.column, "rows": args.rows,
           **metrics(predict_table(table, space, m.idx), m.ms)}
    print(f"{res['samples']} networks: MAPE {100 * res['mape']:.2f} %, RMSE {res['rmse_ms']:.3f} ms, "
          f"Kendall tau {res['kendall_tau']:.3f}")
    if args.out:
        write_json(args.out, res)
    return 0


def run_design(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    idx = balanced_design(space, args.n, seed=args.seed)
    rows = design_rows(space, idx)
    out = Path(args.out)
    if out.suffix == ".json":
        write_json(out, {"format": "directnas-archs", "version": 1, "space": space.to_dict(),
                         "archs": rows})
    elif out.suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["arch_id", "op_idx_list", "ops"])
        for r in rows:
            w.writerow([r["arch_id"], " ".join(map(str, r["op_idx_list"])), " ".join(r["ops"])])
        write_text(out, buf.getvalue())
    else:
        raise UserError(f"--out {out} must end in .csv or .json")
    per_pair = args.n / max(len(l.candidates) for l in space.layers)
    print(f"{args.n} architectures of {space.name} (each (layer, op) pair ~{per_pair:.1f} times): "
          f"{out.resolve()}")
    return 0

"""directnas latency evaluate: the error of a table against whole-network measurements."""

from __future__ import annotations

import argparse

from directnas.latency.fit import (metrics, parse_rows, predict_table, read_measurements,
                                   table_space)
from directnas.latency.table import LatencyTable
from directnas.space.space import load_space
from directnas.utils.fileio import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="error of a table against whole-network measurements")
    p.add_argument("--table", required=True, help="latency table JSON")
    p.add_argument("--measurements", required=True, help="CSV as for 'latency fit'")
    p.add_argument("--column", required=True, help="latency column, e.g. pixel2")
    p.add_argument("--rows", help="rows A:B to test on (A inclusive, B exclusive, 0-based)")
    p.add_argument("--space", help="space (default: the one stored in a fitted table)")
    p.add_argument("--out", help="JSON file for samples, mape, rmse_ms, kendall_tau")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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

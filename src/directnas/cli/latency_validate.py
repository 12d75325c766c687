"""directnas latency validate: predicted vs measured latency of random architectures."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from directnas.pipeline.outdir import check_out_file
from directnas.cli.common import add_protocol_args, bar, protocol_from
from directnas.latency.correction import FEATURE_SETS
from directnas.latency.table import LatencyTable
from directnas.latency.validate import scatter_plot, validate
from directnas.space.space import load_space
from directnas.utils.fileio import write_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="predicted vs measured latency of random architectures")
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--samples", type=int, default=30, help="random architectures (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table",
                   help="table to validate (default: measure the ops in the same rounds)")
    p.add_argument("--out", required=True, help="report JSON to write")
    p.add_argument("--plot", help="scatter plot PNG to write")
    p.add_argument("--fit-correction", nargs="?", const="basic", choices=FEATURE_SETS,
                   help="fit a learned correction on half the archs, report on the other half")
    p.add_argument("--save-table", help="write the table (with the correction, if fitted) here")
    add_protocol_args(p)
    p.set_defaults(func=run)


def _fmt(x: float, pct: bool = False) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{100 * x:.2f} %" if pct else f"{x:.3f}"


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out)
    space = load_space(args.space)
    proto = protocol_from(args)
    table = LatencyTable.load(args.table) if args.table else None
    if table is not None:
        table.check_covers(space, path=args.table)
    report, table = validate(
        space, backend=args.backend, proto=proto, samples=args.samples, table=table,
        rounds=proto.rounds, seed=args.seed, fit=args.fit_correction,
        progress=lambda it: bar(it, "measure", len(it)))  # type: ignore[arg-type]
    write_json(args.out, report)
    if args.plot:
        scatter_plot(report, args.plot)
    if args.save_table:
        table.save(args.save_table)
    print(f"{report['samples']} archs of {space.name} on {args.backend} (batch {proto.batch_size}, "
          f"{proto.threads} threads, {proto.rounds} rounds; held out from the calibration):")
    for p in report["pairs"]:
        print(f"  predicted {p['predicted_ms']:8.3f} ms  measured {p['measured_ms']:8.3f} ms  "
              f"{p['arch']}")
    print(f"RMSE {report['rmse_ms']:.3f} ms  MAPE {_fmt(report['mape'], True)}  "
          f"Pearson r {_fmt(report['pearson_r'])}  Kendall tau {_fmt(report['kendall_tau'])}")
    if "holdout" in report:
        h = report["holdout"]
        print(f"held-out half ({h['test_samples']} archs): table sum MAPE "
              f"{_fmt(h['raw']['mape'], True)}, tau {_fmt(h['raw']['kendall_tau'])} -> "
              f"corrected MAPE {_fmt(h['corrected']['mape'], True)}, "
              f"tau {_fmt(h['corrected']['kendall_tau'])}")
    where = [f"report: {Path(args.out).resolve()}"]
    if args.plot:
        where.append(f"plot: {Path(args.plot).resolve()}")
    if args.save_table:
        where.append(f"table: {Path(args.save_table).resolve()}")
    print(", ".join(where))
    return 0

"""directnas latency show | merge | import | export-ops | validate: latency-table tooling."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from directnas.cli.common import add_protocol_args, bar, protocol_from
from directnas.errors import UserError
from directnas.utils.fileio import write_json
from directnas.latency.correction import FEATURE_SETS
from directnas.latency.importers import IMPORTERS, import_table
from directnas.latency.table import LatencyTable
from directnas.latency.ondevice import export_ops
from directnas.latency.validate import scatter_plot, validate
from directnas.space.space import load_space


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a latency table, sorted")
    p.add_argument("table", help="latency table JSON")
    p.add_argument("--sort", choices=("key", "ms"), default="key", help="sort rows by key or by ms")
    p.add_argument("--space", help="show only the ops of this space (and which are missing)")
    p.set_defaults(func=run_show)

    p = sub.add_parser("merge", help="merge tables (later ones win on shared keys)")
    p.add_argument("tables", nargs="+", help="latency tables JSON, at least two")
    p.add_argument("--out", required=True, help="merged table JSON to write")
    p.set_defaults(func=run_merge)

    p = sub.add_parser("import", help="convert a table measured elsewhere into a directnas table")
    p.add_argument("file", help="foreign table (ProxylessNAS yaml or ondevice_profile.py JSON)")
    p.add_argument("--format", required=True, choices=sorted(IMPORTERS), help="format of FILE")
    p.add_argument("--space", help="space the table is for (required for proxyless-yaml); "
                                   "its coverage is checked")
    p.add_argument("--out", required=True, help="latency table JSON to write")
    p.set_defaults(func=run_import)

    p = sub.add_parser("export-ops",
                       help="export a space's ops as ONNX for scripts/ondevice_profile.py")
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--latency-batch", type=int, default=1, help="batch size of the exported ops")
    p.set_defaults(func=run_export_ops)

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
    p.set_defaults(func=run_validate)


def run_show(args: argparse.Namespace) -> int:
    table = LatencyTable.load(args.table)
    keys = list(table.entries)
    missing: list[str] = []
    if args.space:
        space = load_space(args.space)
        required = table.required_keys(space)
        keys = [k for k in required if k in table.entries]
        missing = table.missing(required)
    keys.sort(key=(lambda k: (-table.ms(k), k)) if args.sort == "ms" else (lambda k: k))
    m = table.meta
    print(f"{args.table}: {len(table.entries)} entries; backend {m.get('backend', '?')}, "
          f"device {m.get('device', '?')}, threads {m.get('threads', '?')}, "
          f"batch {m.get('batch_size', '?')}, dtype {m.get('dtype', '?')}")
    width = max([len(k) for k in keys] + [3])
    print(f"{'op':<{width}}  {'ms':>9}  {'spread':>8}")
    for k in keys:
        e = table.entries[k]
        spread = e.get("spread_ms")
        print(f"{k:<{width}}  {e['ms']:9.4f}  {'' if spread is None else f'{spread:8.4f}'}")
    print(f"total {sum(table.ms(k) for k in keys):.3f} ms over {len(keys)} ops")
    if table.correction is not None:
        c = table.correction
        terms = ", ".join(f"{f} {v:+.4f}" for f, v in zip(c.features, c.coef))
        print(f"correction: intercept {c.intercept:+.4f} ms, {terms}")
    if missing:
        print(f"missing {len(missing)} op(s) of {args.space}: {', '.join(missing)}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    if len(args.tables) < 2:
        raise UserError("latency merge needs at least two tables")
    tables = [LatencyTable.load(p) for p in args.tables]
    backends = {t.meta.get("backend") for t in tables}
    merged = tables[0]
    for t in tables[1:]:
        merged = merged.merge(t)
    merged.meta["merged_from"] = [str(p) for p in args.tables]
    merged.save(args.out)
    note = f" (note: mixed backends {sorted(map(str, backends))})" if len(backends) > 1 else ""
    print(f"merged table: {Path(args.out).resolve()} ({len(merged.entries)} ops){note}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    space = load_space(args.space) if args.space else None
    table = import_table(args.format, args.file, space)
    table.save(args.out)
    cover = f", covers {space.name}" if space else ""
    print(f"latency table: {Path(args.out).resolve()} ({len(table.entries)} ops from "
          f"{args.format}{cover})")
    return 0


def run_export_ops(args: argparse.Namespace) -> int:
    if args.latency_batch < 1:
        raise UserError("--latency-batch must be >= 1")
    space = load_space(args.space)
    manifest = export_ops(space, args.out, batch_size=args.latency_batch,
                          progress=lambda it: bar(it, "export ops", len(it)))  # type: ignore
    n = len(json.loads(manifest.read_text())["ops"])
    print(f"op bundle: {Path(args.out).resolve()} ({n} ONNX ops of {space.name}); on the "
          f"device run: python3 ondevice_profile.py {args.out} --out device.json")
    return 0


def _fmt(x: float, pct: bool = False) -> str:
    if math.isnan(x):
        return "n/a"
    return f"{100 * x:.2f} %" if pct else f"{x:.3f}"


def run_validate(args: argparse.Namespace) -> int:
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

"""directnas latency merge: merge latency tables (later ones win on shared keys)."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.pipeline.outdir import check_out_file
from directnas.errors import UserError
from directnas.latency.table import LatencyTable


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="merge tables (later ones win on shared keys)")
    p.add_argument("tables", nargs="+", help="latency tables JSON, at least two")
    p.add_argument("--out", required=True, help="merged table JSON to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out)
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

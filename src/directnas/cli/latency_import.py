"""directnas latency import: a table measured elsewhere as a directnas table."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.pipeline.outdir import check_out_file
from directnas.latency.importers import IMPORTERS, import_table
from directnas.space.space import load_space


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="convert a table measured elsewhere into a directnas table")
    p.add_argument("file", help="foreign table (ProxylessNAS yaml or ondevice_profile.py JSON)")
    p.add_argument("--format", required=True, choices=sorted(IMPORTERS), help="format of FILE")
    p.add_argument("--space", help="space the table is for (required for proxyless-yaml); "
                                   "its coverage is checked")
    p.add_argument("--out", required=True, help="latency table JSON to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out)
    space = load_space(args.space) if args.space else None
    table = import_table(args.format, args.file, space)
    table.save(args.out)
    cover = f", covers {space.name}" if space else ""
    print(f"latency table: {Path(args.out).resolve()} ({len(table.entries)} ops from "
          f"{args.format}{cover})")
    return 0

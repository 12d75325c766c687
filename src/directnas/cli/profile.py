"""directnas profile: measure every candidate op of a space on a backend -> latency table JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.pipeline.outdir import check_out_file
from directnas.cli.common import add_protocol_args, bar, log, parse_target, protocol_from
from directnas.latency.table import LatencyTable
from directnas.latency.near_target import NEAR_NETS, NearTarget, anchor_target
from directnas.latency.measure import profile_space
from directnas.space.space import load_space


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure a space's ops on a device into a latency table")
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--out", required=True, help="latency table JSON to write")
    p.add_argument("--merge", help="existing table whose entries are kept (only missing ops measured)")
    p.add_argument("--near-target", type=parse_target, metavar="T",
                   help="also time whole nets predicted near target T (ms, or 1.5x the fastest net) "
                        "and re-anchor the table on them, as 'directnas run' does before a search")
    p.add_argument("--near-target-nets", type=int, default=NEAR_NETS, metavar="N",
                   help=f"nets timed near --near-target (default {NEAR_NETS})")
    add_protocol_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out)
    space = load_space(args.space)
    proto = protocol_from(args)
    existing = LatencyTable.load(args.merge) if args.merge else None
    table = profile_space(space, backend=args.backend, proto=proto, existing=existing,
                          progress=lambda it: bar(it, "profile ops", len(it)))  # type: ignore[arg-type]
    if args.near_target is not None:
        table, ms = anchor_target(table, space, args.near_target, backend=args.backend,
                                  proto=proto, n=args.near_target_nets)
        near = NearTarget.of(table)
        print(f"near {ms:.4f} ms: " + (f"{len(near.nets)} nets run at {near.scale:.3f}x their "
                                       "prediction (median): table re-anchored" if near else
                                       "no net of the space is predicted there; table as profiled"))
    table.save(args.out)
    log.info("%d entries", len(table.entries))
    print(f"latency table: {Path(args.out).resolve()} ({len(table.entries)} ops, {args.backend}, "
          f"batch {proto.batch_size}, {proto.threads} threads)")
    return 0

"""directnas profile: measure every candidate op of a space on a backend -> latency table JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.commands.common import add_protocol_args, bar, log, protocol_from
from directnas.hardware.lut import LatencyTable
from directnas.hardware.profile import profile_space
from directnas.space.space import load_space


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="measure a space's ops on a device into a latency table")
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--out", required=True, help="latency table JSON to write")
    p.add_argument("--merge", help="existing table whose entries are kept (only missing ops measured)")
    add_protocol_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    proto = protocol_from(args)
    existing = LatencyTable.load(args.merge) if args.merge else None
    table = profile_space(space, backend=args.backend, proto=proto, existing=existing,
                          progress=lambda it: bar(it, "profile ops", len(it)))  # type: ignore[arg-type]
    table.save(args.out)
    log.info("%d entries", len(table.entries))
    print(f"latency table: {Path(args.out).resolve()} ({len(table.entries)} ops, {args.backend}, "
          f"batch {proto.batch_size}, {proto.threads} threads)")
    return 0

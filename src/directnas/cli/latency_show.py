"""directnas latency show: print a latency table, sorted (optionally only a space's ops)."""

from __future__ import annotations

import argparse

from directnas.latency.table import LatencyTable
from directnas.space.space import load_space


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="print a latency table, sorted")
    p.add_argument("table", help="latency table JSON")
    p.add_argument("--sort", choices=("key", "ms"), default="key", help="sort rows by key or by ms")
    p.add_argument("--space", help="show only the ops of this space (and which are missing)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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

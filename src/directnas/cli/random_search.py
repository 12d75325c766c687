"""directnas random-search: the random baseline under a latency target and a wall-clock budget."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from directnas import api
from directnas.cli.common import (add_protocol_args, bar, given_backend, log, parse_target,
                                  protocol_from)
from directnas.cli.data_flags import add_data_args
from directnas.cli.flags import add_out_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("random-search", help="random baseline: sample archs under the latency "
                       "target, train each briefly, keep the best (same budget as a search)")
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    add_data_args(p)
    p.add_argument("--target-latency", type=parse_target, dest="target_latency_ms",
                   help="target latency in ms on the latency backend (1.5), or a multiple of the "
                        "space's fastest net on the table (1.6x)")
    p.add_argument("--tolerance", type=float,
                   help="accept archs within this fraction of the target (default 0.1)")
    p.add_argument("--at-most", action="store_true", help="accept any arch <= target instead")
    p.add_argument("--latency-table", help="use this table instead of profiling the device")
    p.add_argument("--config", help="YAML file of random-search options (flags override it)")
    p.add_argument("--budget-s", type=float, dest="budget_s", help="wall-clock budget in s (default 600)")
    p.add_argument("--steps-per-arch", type=int, dest="steps_per_arch",
                   help="training batches per sampled arch (default 100)")
    p.add_argument("--max-archs", type=int, dest="max_archs")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke budget")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: CUDA when there is one)")
    add_out_args(p, "run folder")
    add_protocol_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = {k: getattr(args, k, None) for k in ("tolerance", "budget_s", "steps_per_arch",
                                                  "max_archs", "batch_size", "lr", "seed", "device")}
    out = Path(args.out)
    r = api.random_search(args.space, args.data, out=out, target_latency=args.target_latency_ms,
                          table=args.latency_table, backend=given_backend(args),
                          protocol=asdict(protocol_from(args)), quick=args.quick,
                          at_most=args.at_most, threads=args.threads, config_file=args.config,
                          progress=bar, on_candidate=log_candidate, force=args.force, **config)
    s = r.summary
    print(f"architecture: {(out / 'arch.json').resolve()}  [{r.result.best.summary()}]")
    print(f"best of {s['archs']} archs: valid accuracy {s['valid_accuracy']:.4f}, predicted "
          f"latency {s['predicted_latency_ms']:.3f} ms (target {r.config.target_latency_ms})")
    print(f"log: {(out / 'random_search.json').resolve()}")
    return 0


def log_candidate(i: int, c: Any) -> None:
    log.info("arch %d: valid accuracy %.4f, predicted %.3f ms (%.0f s)", i, c.valid_accuracy,
             c.predicted_latency_ms, c.train_s)

"""directnas random-search: the random baseline under a latency target and a wall-clock budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.cli.common import (SKIP_HELP, add_protocol_args, get_table, log, parse_target,
                                       protocol_from, resolve_config, resolve_target, save_resolved)
from directnas.data.readers import load_dataset
from directnas.nas.random_search import RandomSearchConfig, random_search, write_outputs
from directnas.space.space import load_space

QUICK = {"budget_s": 60.0, "steps_per_arch": 30, "valid_size": 1000}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("random-search", help="random baseline: sample archs under the latency "
                       "target, train each briefly, keep the best (same budget as a search)")
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or a dataset folder")
    p.add_argument("--skip-bad-images", action="store_true", help=SKIP_HELP)
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
    p.add_argument("--out", required=True, help="run folder")
    add_protocol_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k, None) for k in
                 ("target_latency_ms", "tolerance", "budget_s", "steps_per_arch", "max_archs",
                  "batch_size", "lr", "seed", "device")}
    target_spec = overrides.pop("target_latency_ms")
    if args.quick:
        overrides = {**QUICK, **{k: v for k, v in overrides.items() if v is not None}}
    cfg = resolve_config(RandomSearchConfig, yaml_path=args.config, overrides=overrides)
    if args.at_most:
        cfg.tolerance = None
    cfg.threads = args.threads
    space = load_space(args.space)
    data = load_dataset(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = get_table(space, table_path=args.latency_table, backend=args.backend,
                      proto=protocol_from(args), out=out)
    if target_spec is not None:
        cfg.target_latency_ms = resolve_target(target_spec, space, table)
    save_resolved(out, "random_search_config.json", cfg, {"space": space.name, "data": str(args.data),
                                                          "backend": args.backend})
    result = random_search(space, data, table, cfg, on_candidate=lambda i, c: log.info(
        "arch %d: valid accuracy %.4f, predicted %.3f ms (%.0f s)", i, c.valid_accuracy,
        c.predicted_latency_ms, c.train_s))
    summary = write_outputs(out, result, cfg, space)
    print(f"architecture: {(out / 'arch.json').resolve()}  [{result.best.summary()}]")
    print(f"best of {summary['archs']} archs: valid accuracy {summary['valid_accuracy']:.4f}, "
          f"predicted latency {summary['predicted_latency_ms']:.3f} ms (target {cfg.target_latency_ms})")
    print(f"log: {(out / 'random_search.json').resolve()}")
    return 0

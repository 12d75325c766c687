"""directnas search: ProxylessNAS search on a dataset for a device -> arch.json in a run folder."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from directnas import api
from directnas.cli.common import bar, given_backend, log, protocol_from
from directnas.cli.flags import add_out_args
from directnas.cli.search_flags import add_search_args, search_options
from directnas.utils.distributed import init_from_env
from directnas.utils.fileio import read_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an architecture for a dataset and a device")
    add_search_args(p)
    add_out_args(p, "run folder")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    result = api.search(args.space, args.data, target_latency=args.target_latency_ms,
                        table=args.latency_table, out=out, resume=args.resume, progress=bar,
                        on_epoch=log_search_epoch, backend=given_backend(args), device=args.device,
                        input_size=args.input_size, max_input_size=args.max_input_size,
                        protocol=asdict(protocol_from(args)), force=args.force,
                        **search_options(args))
    if not init_from_env().is_main:  # rank 0 speaks for the job
        return 0
    print(f"architecture: {(out / 'arch.json').resolve()}  [{result.arch.summary()}]")
    if result.predicted_latency_ms is not None:
        fastest = read_json(out / "search.json").get("fastest_latency_ms", float("nan"))
        print(f"predicted latency: {result.predicted_latency_ms:.3f} ms "
              f"(target {result.target_latency_ms}, fastest possible {fastest:.3f})")
    print(f"search log: {(out / 'search.json').resolve()}")
    return 0


def log_search_epoch(row: dict[str, float]) -> None:
    lat = f", E[LAT] {row['expected_latency_ms']:.3f} ms, argmax {row['derived_latency_ms']:.3f} ms" \
        if "expected_latency_ms" in row else ""
    acc = row.get("supernet_valid_accuracy")
    decided = f", mean largest op probability {row['mean_max_prob']:.2f}" \
        if "mean_max_prob" in row else ""
    decided += f", supernet valid acc {100 * acc:.1f} %" if acc is not None else ""
    log.info("epoch %d: train loss %.3f%s%s (%.0f s)", row["epoch"], row["train_loss"], lat,
             decided, row["epoch_s"])

"""directnas search: ProxylessNAS search on a dataset for a device -> arch.json in a run folder."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from directnas import api
from directnas.cli.common import (SKIP_HELP, add_protocol_args, bar, log, parse_target,
                                   protocol_from)
from directnas.utils.distributed import init_from_env
from directnas.utils.fileio import read_json
from directnas.nas.gates import STRATEGIES
from directnas.nas.loss import LOSS_FORMS
from directnas.nas.searcher import WEIGHT_PATHS
from directnas.nas.superkernel import SHARING

# the flags whose values are SearchConfig fields (None: not given, the config's value holds)
SEARCH_OPTIONS = ("strategy", "loss", "epochs", "warmup_epochs", "batch_size", "lr", "arch_lr",
                  "lam", "checkpoint_every", "amp", "weight_sharing", "weight_paths")


def add_device_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:N or auto (default: CUDA when there is one)")
    p.add_argument("--amp", action="store_const", const=True,
                   help="mixed precision (bfloat16 autocast) on CUDA")
    p.add_argument("--input-size", type=int, dest="input_size",
                   help="resize the images to this size (default: the space's input size)")


def add_search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or a dataset folder")
    p.add_argument("--skip-bad-images", action="store_true", help=SKIP_HELP)
    p.add_argument("--target-latency", type=parse_target, dest="target_latency_ms",
                   help="target latency in ms on the latency backend (1.5), or a multiple of the "
                        "space's fastest net on the table (1.6x)")
    p.add_argument("--latency-table", help="use this table instead of profiling the device")
    p.add_argument("--config", help="YAML file of search options (flags override it)")
    p.add_argument("--strategy", choices=sorted(STRATEGIES), help="gate strategy (default binary-full-v2)")
    p.add_argument("--loss", choices=LOSS_FORMS, help="hardware-aware loss form (default hinge)")
    p.add_argument("--epochs", type=int, help="search epochs after warm-up")
    p.add_argument("--warmup-epochs", type=int, dest="warmup_epochs")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float)
    p.add_argument("--arch-lr", type=float, dest="arch_lr")
    p.add_argument("--lam", type=float, help="latency weight lambda (hinge/add/lagrange)")
    p.add_argument("--weight-sharing", dest="weight_sharing", choices=SHARING,
                   help="MBConv candidates of a layer that share weights: none, kernel (nested "
                        "kernels per expansion ratio) or full (kernels and channels)")
    p.add_argument("--weight-paths", dest="weight_paths", choices=WEIGHT_PATHS,
                   help="paths of the weight steps after the warm-up: drawn from p, or uniformly")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int, dest="checkpoint_every",
                   help="also checkpoint every N steps inside an epoch (default: epoch ends only)")
    p.add_argument("--quick", action="store_true", help="a 1-2 minute smoke budget")
    add_device_args(p)
    add_protocol_args(p)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an architecture for a dataset and a device")
    add_search_args(p)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.set_defaults(func=run)


def protocol_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The latency flags as ``api`` keywords (checked as the CLI always did)."""
    return asdict(protocol_from(args))


def search_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The search flags as ``api.search`` keywords (flags not given are left out)."""
    options = {k: getattr(args, k, None) for k in SEARCH_OPTIONS}
    return {**{k: v for k, v in options.items() if v is not None},
            "backend": args.backend if getattr(args, "backend_given", False) else None,
            "quick": args.quick, "seed": args.seed, "device": args.device,
            "input_size": args.input_size, "config_file": args.config,
            "protocol": protocol_kwargs(args), "threads": args.threads}


def do_search(args: argparse.Namespace, out: Path, *, resume: bool, table: str | None = None,
              target: float | str | None = None,
              on_epoch: Callable[[dict[str, float]], None] | None = None) -> api.SearchResult:
    """``api.search`` with the flags; prints where the outputs went."""
    result = api.search(args.space, args.data, target_latency=target, table=table, out=out,
                        resume=resume, progress=bar, on_epoch=on_epoch, **search_kwargs(args))
    if not init_from_env().is_main:  # rank 0 speaks for the job
        return result
    print(f"architecture: {(out / 'arch.json').resolve()}  [{result.arch.summary()}]")
    if result.predicted_latency_ms is not None:
        fastest = read_json(out / "search.json").get("fastest_latency_ms", float("nan"))
        print(f"predicted latency: {result.predicted_latency_ms:.3f} ms "
              f"(target {result.target_latency_ms}, fastest possible {fastest:.3f})")
    print(f"search log: {(out / 'search.json').resolve()}")
    return result


def log_search_epoch(row: dict[str, float]) -> None:
    lat = f", E[LAT] {row['expected_latency_ms']:.3f} ms, argmax {row['derived_latency_ms']:.3f} ms" \
        if "expected_latency_ms" in row else ""
    acc = row.get("supernet_valid_accuracy")
    decided = f", mean largest op probability {row['mean_max_prob']:.2f}" \
        if "mean_max_prob" in row else ""
    decided += f", supernet valid acc {100 * acc:.1f} %" if acc is not None else ""
    log.info("epoch %d: train loss %.3f%s%s (%.0f s)", row["epoch"], row["train_loss"], lat,
             decided, row["epoch_s"])


def run(args: argparse.Namespace) -> int:
    do_search(args, Path(args.out), resume=args.resume, table=args.latency_table,
              target=args.target_latency_ms, on_epoch=log_search_epoch)
    return 0

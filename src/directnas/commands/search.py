"""directnas search: ProxylessNAS search on a dataset for a device -> arch.json in a run folder."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

from directnas.commands.common import (add_protocol_args, bar, check_out_dir, check_table_backend,
                                       get_table, log, parse_target, protocol_from,
                                       quiet_unless_main, resolve_config, resolve_target,
                                       save_resolved)
from directnas.data import load_dataset
from directnas.distributed import init_from_env
from directnas.fileio import torch_save
from directnas.hardware.lut import LatencyTable
from directnas.search.gates import STRATEGIES
from directnas.search.loss import LOSS_FORMS
from directnas.search.searcher import CHECKPOINT, SearchConfig, Searcher, check_data_fits
from directnas.space.space import SearchSpace, load_space

QUICK = {"warmup_epochs": 1, "epochs": 1, "max_steps": 30, "valid_size": 1000, "arch_every": 1}


def add_search_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or a dataset folder")
    p.add_argument("--target-latency", type=parse_target, dest="target_latency_ms",
                   help="target latency in ms on the latency backend (1.5), or a multiple of the "
                        "space's fastest net on the table (1.6x)")
    p.add_argument("--latency-table", help="use this table instead of profiling the device")
    p.add_argument("--config", help="YAML file of search options (flags override it)")
    p.add_argument("--strategy", choices=sorted(STRATEGIES), help="gate strategy (default binary-two)")
    p.add_argument("--loss", choices=LOSS_FORMS, help="hardware-aware loss form (default hinge)")
    p.add_argument("--epochs", type=int, help="search epochs after warm-up")
    p.add_argument("--warmup-epochs", type=int, dest="warmup_epochs")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float)
    p.add_argument("--arch-lr", type=float, dest="arch_lr")
    p.add_argument("--lam", type=float, help="latency weight lambda (hinge/add/lagrange)")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-every", type=int, dest="checkpoint_every",
                   help="also checkpoint every N steps inside an epoch (default: epoch ends only)")
    p.add_argument("--quick", action="store_true", help="a 1-2 minute smoke budget")
    add_protocol_args(p)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an architecture for a dataset and a device")
    add_search_args(p)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.set_defaults(func=run)


def _table(args: argparse.Namespace, space: SearchSpace, out: Path, *, resume: bool) -> LatencyTable:
    """--latency-table, else (resuming) the run folder's own table, else cached/profiled."""
    path = args.latency_table
    if path is None and resume and (out / "latency.json").exists():
        path = str(out / "latency.json")
    table = get_table(space, table_path=path, backend=args.backend, proto=protocol_from(args),
                      out=None)
    if path is not None:
        check_table_backend(table, args, path)
    return table


def do_search(args: argparse.Namespace, out: Path, *, resume: bool,
              on_epoch: Callable[[dict[str, float]], None] | None = None) -> Path:
    """``on_epoch(row)`` is also called after every epoch (e.g. TensorBoard logging).

    Every input is checked before anything is written; under torchrun rank 0 profiles the
    latency table once, every rank searches its shard, and rank 0 alone writes.
    """
    dist = init_from_env()
    quiet_unless_main(dist.is_main)
    overrides = {k: getattr(args, k, None) for k in
                 ("strategy", "loss", "epochs", "warmup_epochs", "batch_size", "lr", "arch_lr",
                  "lam", "seed", "target_latency_ms", "checkpoint_every")}
    target_spec = overrides.pop("target_latency_ms")
    if args.quick:
        overrides = {**QUICK, **{k: v for k, v in overrides.items() if v is not None}}
    cfg = resolve_config(SearchConfig, yaml_path=args.config, overrides=overrides)
    cfg.threads = args.threads
    space = load_space(args.space)
    protocol_from(args)
    dist.run_on_main(lambda: check_out_dir(out, CHECKPOINT, resume=resume, what="search checkpoint"))
    data = load_dataset(args.data)
    check_data_fits(space, data)
    table = dist.run_on_main(lambda: _table(args, space, out, resume=resume))
    if target_spec is not None:
        cfg.target_latency_ms = resolve_target(target_spec, space, table)
    searcher = Searcher(space, data, table, cfg, out, dist=dist)
    ck = dist.run_on_main(searcher.load_checkpoint) if resume else None
    if ck is not None and searcher.resume(ck):
        log.info("resumed at epoch %d, step %d", searcher.state.epoch, searcher.state.step)
    # everything is checked: from here on the run folder is written (by rank 0 only)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        table.save(out / "latency.json")
        save_resolved(out, "search_config.json", cfg, {"space": space.name, "data": str(args.data),
                                                       "backend": args.backend, "world": dist.world})
    t0 = time.perf_counter()

    def log_epoch(row: dict[str, float]) -> None:
        if on_epoch is not None:
            on_epoch(row)
        lat = f", E[LAT] {row['expected_latency_ms']:.3f} ms, argmax {row['derived_latency_ms']:.3f} ms" \
            if "expected_latency_ms" in row else ""
        log.info("epoch %d: train loss %.3f%s (%.0f s)", row["epoch"], row["train_loss"], lat,
                 row["epoch_s"])

    delay = float(os.environ.get("DIRECTNAS_DEBUG_STEP_DELAY", "0"))  # tests: a slow run to kill
    arch = searcher.run(progress=bar if dist.is_main else (lambda it, d, n: it),
                        on_epoch=log_epoch, on_step=(lambda s: time.sleep(delay)) if delay else None)
    dump = os.environ.get("DIRECTNAS_DEBUG_DUMP")  # tests: every rank's final state
    if dump:
        torch_save(Path(dump) / f"rank{dist.rank}.pt",
                   {"net": searcher.net.state_dict(), "ops": arch.ops, "world": dist.world})
    if not dist.is_main:
        return out / "arch.json"
    summary = searcher.write_outputs(arch, wall_s=time.perf_counter() - t0)
    print(f"architecture: {(out / 'arch.json').resolve()}  [{arch.summary()}]")
    if "predicted_latency_ms" in summary:
        print(f"predicted latency: {summary['predicted_latency_ms']:.3f} ms "
              f"(target {cfg.target_latency_ms}, fastest possible {summary['fastest_latency_ms']:.3f})")
    print(f"search log: {(out / 'search.json').resolve()}")
    return out / "arch.json"


def run(args: argparse.Namespace) -> int:
    do_search(args, Path(args.out), resume=args.resume)
    return 0

"""Shared CLI helpers: progress bars, config layering, latency-table resolution."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any, Iterable, TypeVar

from tqdm import tqdm

from directnas.data.readers import DataPath
from directnas.latency import target as targets
from directnas.errors import UserError
from directnas.runtimes import CLOCKS, DEFAULT, DTYPES, STATS, names
from directnas.latency.table import LatencyTable
from directnas.latency.cache import cached_table
from directnas.latency.measure import Protocol
from directnas.config import resolve_config  # noqa: F401  (re-exported for commands)
from directnas.pipeline.runfolder import check_out_dir, quiet_unless_main, save_resolved  # noqa: F401
from directnas.space.space import SearchSpace
from directnas.latency.target import resolve_target  # noqa: F401

log = logging.getLogger("directnas")
T = TypeVar("T")


def bar(it: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """A progress bar with ETA (on stderr; quiet when not a terminal and CI is set)."""
    disable = bool(os.environ.get("DIRECTNAS_NO_PROGRESS"))
    return tqdm(it, desc=desc, total=total, leave=False, dynamic_ncols=True, disable=disable)


SKIP_HELP = "skip unreadable images of an image folder (counted in one line) instead of stopping"


def apply_data_options(args: argparse.Namespace) -> argparse.Namespace:
    """``--data`` as a ``DataPath`` that carries ``--skip-bad-images`` (when given)."""
    if getattr(args, "skip_bad_images", False) and getattr(args, "data", None):
        args.data = DataPath(args.data, skip_bad_images=True)
    return args


def parse_target(text: str) -> float | str:
    """``--target-latency``: ``targets.parse_target`` with argparse's error type."""
    try:
        return targets.parse_target(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _StoreExplicit(argparse.Action):
    """Stores the value and records that the user gave it (``args.<dest>_given``)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(ns, self.dest, values)
        setattr(ns, f"{self.dest}_given", True)


def add_protocol_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="torch-cpu", action=_StoreExplicit,
                   help=f"latency backend: {DEFAULT} (default), "
                        + ", ".join(n for n in names() if n != DEFAULT))
    p.add_argument("--threads", type=int, default=1,
                   help="threads for latency measurement (default 1: batch-1 latency)")
    p.add_argument("--latency-batch", type=int, default=1, help="batch size for latency (default 1)")
    p.add_argument("--repeats", type=int, default=30,
                   help="timed calls per net/op per round (default 30; --stat of them is kept)")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds, each with a drift reference net; the median over "
                        "rounds is kept (default 5)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs per op")
    p.add_argument("--dtype", default="float32", choices=DTYPES, help="dtype for latency (default float32)")
    p.add_argument("--stat", default="p10", choices=STATS,
                   help="statistic of a round's calls (default p10: resists a loaded machine)")
    p.add_argument("--clock", default="wall", choices=CLOCKS,
                   help="wall (default) or cpu: one thread's CPU time (with --threads 1)")


def protocol_from(args: argparse.Namespace) -> Protocol:
    for name in ("threads", "latency_batch", "repeats", "rounds"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1")
    return Protocol(batch_size=args.latency_batch, threads=args.threads, warmup=args.warmup,
                    repeats=args.repeats, dtype=getattr(args, "dtype", "float32"),
                    stat=getattr(args, "stat", "p10"), clock=getattr(args, "clock", "wall"),
                    rounds=args.rounds)


def get_table(space: SearchSpace, *, table_path: str | None, backend: str, proto: Protocol,
              out: Path | None) -> LatencyTable:
    """The user's table (checked against the space), or this device's cached one."""
    if table_path:
        table = LatencyTable.load(table_path)
        table.check_covers(space, path=table_path)
    else:
        table = cached_table(space, backend=backend, proto=proto, progress=bar)
    if out is not None:
        table.save(out / "latency.json")
    return table


def check_table_backend(table: LatencyTable, args: argparse.Namespace, path: str | Path) -> None:
    """A table measured on another backend than an explicit ``--backend`` is a mistake."""
    was = table.meta.get("backend")
    if getattr(args, "backend_given", False) and was and was != args.backend:
        raise UserError(f"latency table {path} was measured on backend {was!r} "
                        f"({table.meta.get('device', 'unknown device')}), not --backend {args.backend!r}: "
                        f"pass a table profiled with --backend {args.backend} or drop --backend")

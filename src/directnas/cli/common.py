"""Shared CLI helpers: progress bars, target parsing, and the latency-protocol flags."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Iterable, TypeVar

from tqdm import tqdm

from directnas.cli.flags import Flag, add_flags, flag_values
from directnas.errors import UserError
from directnas.latency import target as targets
from directnas.latency.cache import make_protocol
from directnas.latency.measure import Protocol
from directnas.runtimes import ACROSS, CLOCKS, DEFAULT, DTYPES, STATS, names

log = logging.getLogger("directnas")
T = TypeVar("T")

PROTOCOL = [
    Flag("threads", "threads for latency measurement (default 1: batch-1 latency); given, also "
                    "the search's and the training's (default: the usable cores)"),
    Flag("batch_size", "batch size for latency (default 1)", name="latency-batch"),
    Flag("repeats", "timed calls per net/op per round (default 30; --stat of them is kept)"),
    Flag("rounds", "interleaved rounds, each with a drift reference net (default 5)"),
    Flag("across", "how rounds combine: min (default: the fastest round; a host's speed flips "
                   "between two states) or median (scaled by the reference)", choices=ACROSS),
    Flag("warmup", "untimed warm-up runs per op"),
    Flag("dtype", "dtype for latency (default float32)", choices=DTYPES),
    Flag("stat", "statistic of a round's calls (default p10)", choices=STATS),
    Flag("clock", "wall (default) or cpu: one thread's CPU time (with --threads 1)", choices=CLOCKS),
]


def bar(it: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """A progress bar with ETA (on stderr; off when DIRECTNAS_NO_PROGRESS is set)."""
    disable = bool(os.environ.get("DIRECTNAS_NO_PROGRESS"))
    return tqdm(it, desc=desc, total=total, leave=False, dynamic_ncols=True, disable=disable)


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
    add_flags(p, Protocol, PROTOCOL, defaults=True)
    p.set_defaults(threads=None)  # latency: 1 (Protocol); search and training: the usable cores


def protocol_from(args: argparse.Namespace) -> Protocol:
    """The latency flags as a checked ``Protocol``."""
    values = flag_values(args, PROTOCOL)
    for f in PROTOCOL[:4]:
        if values.get(f.field, 1) < 1:
            raise UserError(f"--{f.name or f.field} must be >= 1, got {values[f.field]}: pass "
                            "1 or more")
    return make_protocol(values)


def given_backend(args: argparse.Namespace) -> str | None:
    """``--backend`` when the user gave it (a given table's backend is then checked), else None."""
    return args.backend if getattr(args, "backend_given", False) else None

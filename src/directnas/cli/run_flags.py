"""The flags of ``directnas run`` beside the search's: the targets, the training flags as
``--train-*`` (generated from ``TrainConfig``), the compression stage, the report."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from directnas.cli.common import parse_target
from directnas.cli.compress_flags import add_compress_options, compress_options as options_of
from directnas.cli.flags import add_flags
from directnas.cli.train_flags import TRAIN
from directnas.latency.near_target import NEAR_NETS
from directnas import runtimes
from directnas.training.train_net import TrainConfig


def parse_targets(text: str) -> list[float | str]:
    """``1.5``, ``1.2,1.5,2.0`` (ms) or multiples of the fastest net (``1.6x``, ``1.3x,2x``)."""
    values = [parse_target(v) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give a target latency, e.g. 1.5 (ms), 1.6x or "
                                         "1.2,1.5,2.0")
    return list(dict.fromkeys(values))


def add_run_args(p: argparse.ArgumentParser) -> None:
    """Every flag of ``run`` that ``search`` does not have."""
    p.add_argument("--target-latency", type=parse_targets, dest="targets",
                   help="target latency in ms (1.5) or as a multiple of the space's fastest net as "
                        "timed on this device before the search (1.6x; on the table when it is given "
                        "with --latency-table); several (1.2,1.5,2.0): one search + train each")
    p.add_argument("--near-target-nets", type=int, default=NEAR_NETS, metavar="N",
                   help="when the table is profiled by this run: time N whole nets predicted near "
                        "each target and re-anchor the table on them before the search "
                        f"(default {NEAR_NETS}; 0: off)")
    p.add_argument("--train-config", help="YAML file of training options")
    add_flags(p, TrainConfig, TRAIN, prefix="train-")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--compress-max-loss", type=float, metavar="P",
                   help="last stage: directnas compress --max-loss P (points) on each trained net")
    g.add_argument("--compress-target-ratio", type=float, metavar="R",
                   help="last stage: directnas compress --target-ratio R on each trained net")
    p.add_argument("--compress-method", default="prune,share,huffman",
                   help="methods of the compression stage (default prune,share,huffman)")
    p.add_argument("--compress-args", default="", metavar="FLAGS",
                   help="further directnas compress flags of the compression stage, one quoted "
                        "string (e.g. \"--probe-steps 200 --valid-images 1000\")")
    p.add_argument("--compare", nargs="+", default=[], metavar="DIR",
                   help="finished baseline/run folders to add to the report's accuracy-latency plane")
    p.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files")


def compress_options(args: argparse.Namespace, backend: str | None) -> dict[str, Any] | None:
    """The compression stage's ``directnas.compress`` options (None: no compression), its net
    exported for the runtime of ``backend``."""
    if args.compress_max_loss is None and args.compress_target_ratio is None:
        return None
    fmt = None if "int8" in args.compress_method else \
        runtimes.for_backend(backend).format
    return {"method": args.compress_method, "max_loss": args.compress_max_loss,
            "target_ratio": args.compress_target_ratio, "threads": args.threads or 1, "seed": args.seed,
            "export": fmt, **parse_compress_args(args.compress_args)}


def parse_compress_args(text: str) -> dict[str, Any]:
    """``run --compress-args "--probe-steps 200 ..."``: those compress flags as options."""
    p = argparse.ArgumentParser(prog="directnas run --compress-args", add_help=False)
    add_compress_options(p)
    return {k: v for k, v in options_of(p.parse_args(shlex.split(text))).items()
            if v not in (None, False)}

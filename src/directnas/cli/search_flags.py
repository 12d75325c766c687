"""The search's flags, generated from ``SearchConfig``, and the device flags (shared by
``search``, ``run`` and, for the device, ``train``)."""

from __future__ import annotations

import argparse
from typing import Any

from directnas.cli.common import add_protocol_args, parse_target
from directnas.cli.data_flags import add_data_args
from directnas.cli.flags import Flag, add_flags, flag_values, threads_option
from directnas.data.auto_space import AUTO
from directnas.nas.gates import STRATEGIES
from directnas.nas.loss import LOSS_FORMS
from directnas.nas.searcher import DERIVES, UNLEARNED_DERIVES, WEIGHT_PATHS, SearchConfig
from directnas.nas.superkernel import SHARING
from directnas.space.fitted import MAX_INPUT_SIZE

AMP = Flag("amp", "mixed precision (bfloat16 autocast) on CUDA", switch="on")
SEARCH = [
    Flag("strategy", "gate strategy", choices=sorted(STRATEGIES)),
    Flag("loss", "alpha's loss: none (CE alone, the derive meets T: the default) or CE plus "
         "a latency term (hinge, add, mul, lagrange)", choices=LOSS_FORMS),
    Flag("epochs", "search epochs after warm-up (default 2; on small data 1, epochs of 330 steps)"),
    Flag("warmup_epochs", "epochs training the supernet's weights alone, before the search "
                          "(default 1; on small data, epochs of 330 steps)"),
    Flag("batch_size", "batch size of the weight and architecture steps"),
    Flag("lr", "learning rate of the supernet's weights"),
    Flag("arch_lr", "learning rate of the architecture parameters"),
    Flag("lam", "latency weight lambda (hinge/add/lagrange)"),
    Flag("weight_sharing", "MBConv candidates sharing weights: none, kernel (nested kernels per "
         "expansion ratio) or full (kernels, channels; small data's default)", choices=SHARING),
    Flag("weight_paths", "paths of the weight steps after the warm-up: drawn from p, or uniformly",
         choices=WEIGHT_PATHS),
    Flag("derive", "the net kept: constrained (most probable in [0.95 T, T]), argmax, rerank (nets "
         "of that window scored in the supernet) or macs (the most MACs there)", choices=DERIVES),
    Flag("unlearned_derive", "the net kept when the supernet scores near chance: macs or keep "
         "(the search's choice anyway)", choices=UNLEARNED_DERIVES),
    Flag("rerank_candidates", "nets the rerank derive scores inside the supernet"),
    Flag("checkpoint_every", "also checkpoint every N steps inside an epoch (default 0: ends only)"),
]


def add_device_args(p: argparse.ArgumentParser, cls: type) -> None:
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:N or auto (default: CUDA when there is one)")
    add_flags(p, cls, [AMP])
    p.add_argument("--input-size", type=int, dest="input_size",
                   help="resize the images to this size (default: the space's input size)")


def add_space_args(p: argparse.ArgumentParser) -> None:
    """``--space`` (default ``auto``: chosen from the data) and ``--max-input-size``."""
    p.add_argument("--space", default=AUTO,
                   help="preset name or YAML path (default auto: fashion-mnist for the demo's "
                        "data, else a space fitted to the images' size)")
    p.add_argument("--max-input-size", type=int, default=MAX_INPUT_SIZE, metavar="PX",
                   help="with --space auto: the largest input size fitted to the images, a CPU "
                        f"budget (default {MAX_INPUT_SIZE}; --input-size overrides)")


def add_search_args(p: argparse.ArgumentParser) -> None:
    add_space_args(p)
    add_data_args(p)
    p.add_argument("--target-latency", type=parse_target, dest="target_latency_ms",
                   help="target latency in ms on the latency backend (1.5), or a multiple of the "
                        "space's fastest net on the table (1.6x)")
    p.add_argument("--latency-table", help="use this table instead of profiling the device")
    p.add_argument("--config", help="YAML file of search options (flags override it)")
    add_flags(p, SearchConfig, SEARCH)
    p.add_argument("--seed", type=int)
    p.add_argument("--quick", action="store_true", help="a 1-2 minute smoke budget")
    add_device_args(p, SearchConfig)
    add_protocol_args(p)


def search_options(args: argparse.Namespace) -> dict[str, Any]:
    """The search flags as ``directnas.search`` options (config fields given, quick, seed, file)."""
    return {**flag_values(args, [*SEARCH, AMP]), "quick": args.quick, "seed": args.seed,
            "config_file": args.config, **threads_option(args)}

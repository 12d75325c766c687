"""Training flags, generated from ``TrainConfig``: ``train`` and ``baselines`` add them as
``--epochs`` (``--train-epochs`` also works), ``run`` with the prefix ``--train-``."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from directnas.cli.common import add_protocol_args, given_backend, protocol_from
from directnas.cli.data_flags import add_data_args
from directnas.cli.flags import Flag, add_flags, flag_values, threads_option
from directnas.cli.search_flags import AMP, add_device_args
from directnas.training.train_net import TrainConfig

TRAIN = [
    Flag("epochs", "epochs of training from scratch (default 20; on small data as many as "
                   "1,500 weight updates take)"), Flag("batch_size", "training batch size"),
    Flag("lr", "initial learning rate (cosine schedule)"),
    Flag("weight_decay", "L2 on conv/linear weights (default 5e-5; 5e-4 for lenet-300-100)"),
    Flag("augment", "random crop + flip of the training images (default on; off for "
                    "lenet-300-100)"),
    Flag("random_erasing", "probability of random erasing per training image (default 0: off)"),
    Flag("ema_decay", "keep an exponential moving average of the weights with this decay per "
                      "step (e.g. 0.999) and end with it (default 0: off)", name="ema"),
    Flag("checkpoint_every", "also checkpoint every N steps inside an epoch (default 0: epoch "
                             "ends only)"),
]


def add_train_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``train`` and ``baselines`` (``--epochs``, ``--lr``, ...; the older
    ``--train-epochs``, ``--train-lr``, ... still work)."""
    add_data_args(p, "'fashion-mnist' or a dataset folder (IDX, CIFAR-10 binary, ImageFolder)")
    p.add_argument("--config", help="YAML file of training options (flags override it)")
    add_flags(p, TrainConfig, TRAIN, aliases=("train-",))
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke budget")
    p.add_argument("--latency-table", help="table for predicted_latency_ms")
    add_device_args(p, TrainConfig)
    add_protocol_args(p)


def train_options(args: argparse.Namespace, *, prefix: str = "",
                  config_file: str | None = None) -> dict[str, Any]:
    """The training flags (``--<prefix>epochs``, ...) as ``directnas.train`` options: the
    config fields given, quick, seed, the YAML file and the threads."""
    return {**flag_values(args, TRAIN, prefix=prefix), "quick": args.quick, "seed": args.seed,
            "config_file": config_file, **threads_option(args)}


def train_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Every ``directnas.train`` keyword the flags of ``train`` / ``baselines`` set."""
    return {**train_options(args, config_file=args.config), **flag_values(args, [AMP]),
            "backend": given_backend(args), "table": args.latency_table, "device": args.device,
            "input_size": args.input_size, "protocol": asdict(protocol_from(args))}

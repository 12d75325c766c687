"""directnas train: train a searched Arch (or a named model) from scratch; metrics.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable

from directnas import api
from directnas.cli.common import SKIP_HELP, add_protocol_args, bar, log
from directnas.cli.search import add_device_args, protocol_kwargs
from directnas.utils.distributed import init_from_env
from directnas.models.registry import model_names

# flag dest -> TrainConfig field, for the flags that set one
TRAIN_OPTIONS = ("epochs", "batch_size", "lr", "weight_decay", "random_erasing", "ema_decay",
                 "checkpoint_every", "amp", "augment")


def add_train_args(p: argparse.ArgumentParser) -> None:
    """``--epochs``, ``--lr``, ... (the older ``--train-epochs``, ``--train-lr``, ... still work)."""
    p.add_argument("--data", default="fashion-mnist",
                   help="'fashion-mnist' or a dataset folder (IDX, CIFAR-10 binary, ImageFolder)")
    p.add_argument("--skip-bad-images", action="store_true", help=SKIP_HELP)
    p.add_argument("--config", help="YAML file of training options (flags override it)")
    p.add_argument("--epochs", "--train-epochs", type=int, dest="epochs")
    p.add_argument("--batch-size", "--train-batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", "--train-lr", type=float, dest="lr")
    p.add_argument("--weight-decay", "--train-weight-decay", type=float, dest="weight_decay",
                   help="L2 on conv/linear weights (default 5e-5; 5e-4 for lenet-300-100)")
    p.add_argument("--augment", "--train-augment", action=argparse.BooleanOptionalAction,
                   dest="augment", help="random crop + flip of the training images (default on; "
                                        "off for lenet-300-100)")
    p.add_argument("--random-erasing", "--train-random-erasing", type=float, dest="random_erasing",
                   help="probability of random erasing per training image (default 0: off)")
    p.add_argument("--ema", "--train-ema", type=float, dest="ema_decay",
                   help="keep an exponential moving average of the weights with this decay per "
                        "step (e.g. 0.999) and end with it (default 0: off)")
    p.add_argument("--checkpoint-every", "--train-checkpoint-every", type=int,
                   dest="checkpoint_every",
                   help="also checkpoint every N steps inside an epoch (default: epoch ends only)")
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke budget")
    p.add_argument("--latency-table", help="table for predicted_latency_ms")
    add_device_args(p)
    add_protocol_args(p)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a searched architecture or a named model from scratch")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--arch", help="arch.json written by directnas search")
    g.add_argument("--model", help=f"a named model ({', '.join(model_names()) or 'none'})")
    add_train_args(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.set_defaults(func=run)


def train_kwargs(args: argparse.Namespace, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training flags as ``api.train`` keywords (``options``: TrainConfig values that
    replace the flags', e.g. ``run``'s ``--train-*``)."""
    values = options if options is not None else {k: getattr(args, k, None) for k in TRAIN_OPTIONS}
    return {**{k: v for k, v in values.items() if v is not None},
            "backend": args.backend if getattr(args, "backend_given", False) else None,
            "table": args.latency_table, "quick": args.quick, "seed": args.seed,
            "device": args.device, "input_size": args.input_size,
            "config_file": args.config, "protocol": protocol_kwargs(args), "threads": args.threads}


def do_train(args: argparse.Namespace, out: Path, *, arch_path: str | None,
             model_name: str | None, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
             resume: bool | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``api.train`` with the flags; prints the metrics and where they went.  ``resume``
    (default: ``args.resume``) continues from ``out/train_checkpoint.pt``."""
    resume = bool(getattr(args, "resume", False)) if resume is None else resume

    def log_epoch(e: int, r: dict[str, float]) -> None:
        log.info("epoch %d: train loss %.4f", e + 1, r["train_loss"])
        if on_epoch is not None:
            on_epoch(e, r)

    kwargs = train_kwargs(args, options)
    result = api.train(arch_path or model_name, args.data, out=out, resume=resume, progress=bar,
                       on_epoch=log_epoch, **kwargs)
    m = result.metrics
    if not init_from_env().is_main:
        return m
    pred = f", predicted {m['predicted_latency_ms']:.3f} ms" if "predicted_latency_ms" in m else ""
    print(f"test accuracy {100 * m['test_accuracy']:.2f} %, latency {m['latency_ms']:.3f} ms{pred} "
          f"(batch {m['latency_batch_size']}, {m['latency_threads']} threads, {m['latency_backend']})")
    print(f"test accuracy with flip test-time augmentation (image and mirror image averaged, 2x "
          f"the compute): {100 * m['test_accuracy_flip_tta']:.2f} %")
    print(f"metrics: {(out / 'metrics.json').resolve()}\nmodel: {(out / 'model.pt').resolve()}")
    return m


def run(args: argparse.Namespace) -> int:
    do_train(args, Path(args.out), arch_path=args.arch, model_name=args.model)
    return 0

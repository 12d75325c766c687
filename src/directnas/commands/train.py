"""directnas train: train a searched Arch (or a named model) from scratch; metrics.json."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from directnas.commands.common import (add_protocol_args, bar, check_out_dir, check_table_backend,
                                       get_table, log, protocol_from, quiet_unless_main,
                                       resolve_config)
from directnas.data import load_dataset
from directnas.distributed import init_from_env
from directnas.errors import UserError
from directnas.fileio import torch_save, write_json
from directnas.hardware.predictor import predict_arch_ms
from directnas.hardware.profile import measure_net
from directnas.models import build_named, model_names
from directnas.space.arch import Arch
from directnas.train import (TRAIN_CHECKPOINT, TrainConfig, count_macs, count_params,
                             load_train_checkpoint, train_net)

QUICK = {"epochs": 1, "max_steps": 30}
# training-recipe defaults of named models, below --config and the flags: crop + flip costs the
# MLP LeNet-300-100 about 2 points on Fashion-MNIST; L2 5e-4 is what its pruning retrains with
# (docs/compression.md), and `directnas compress` retrains with the model's recipe
MODEL_RECIPES: dict[str, dict[str, Any]] = {
    "lenet-300-100": {"augment": False, "weight_decay": 5e-4}}
# the options `directnas compress` retrains with unless told otherwise (stored in model.pt)
RECIPE_KEYS = ("augment", "label_smoothing", "weight_decay", "lr", "batch_size", "epochs",
               "random_erasing")


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or a dataset folder")
    p.add_argument("--config", help="YAML file of training options (flags override it)")
    p.add_argument("--train-epochs", type=int, dest="epochs")
    p.add_argument("--train-batch-size", type=int, dest="batch_size")
    p.add_argument("--train-lr", type=float, dest="lr")
    p.add_argument("--train-weight-decay", type=float, dest="weight_decay",
                   help="L2 on conv/linear weights (default 5e-5; 5e-4 for lenet-300-100)")
    p.add_argument("--train-augment", action=argparse.BooleanOptionalAction, dest="augment",
                   help="random crop + flip of the training images (default on; off for "
                        "lenet-300-100)")
    p.add_argument("--train-random-erasing", type=float, dest="random_erasing",
                   help="probability of random erasing per training image (default 0: off)")
    p.add_argument("--train-ema", type=float, dest="ema_decay",
                   help="keep an exponential moving average of the weights with this decay per "
                        "step (e.g. 0.999) and end with it (default 0: off)")
    p.add_argument("--train-checkpoint-every", type=int, dest="train_checkpoint_every",
                   help="also checkpoint every N steps inside an epoch (default: epoch ends only)")
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke budget")
    p.add_argument("--latency-table", help="table for predicted_latency_ms")
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


def do_train(args: argparse.Namespace, out: Path, *, arch_path: str | None,
             model_name: str | None,
             on_epoch: Callable[[int, dict[str, float]], None] | None = None,
             resume: bool | None = None) -> dict[str, Any]:
    """``on_epoch(epoch, row)`` is also called after every epoch (e.g. TensorBoard logging).

    ``resume`` (default: ``args.resume``) continues from ``out/train_checkpoint.pt``.  Every
    input is checked before anything is written; under torchrun rank 0 alone writes.
    """
    dist = init_from_env()
    quiet_unless_main(dist.is_main)
    resume = bool(getattr(args, "resume", False)) if resume is None else resume
    overrides = {k: getattr(args, k, None)
                 for k in ("epochs", "batch_size", "lr", "weight_decay", "random_erasing",
                           "ema_decay", "seed", "augment")}
    overrides["checkpoint_every"] = getattr(args, "train_checkpoint_every", None)
    if args.quick:
        overrides = {**QUICK, **{k: v for k, v in overrides.items() if v is not None}}
    cfg = resolve_config(TrainConfig, yaml_path=args.config, overrides=overrides)
    in_yaml = set(yaml.safe_load(Path(args.config).read_text()) or {}) if args.config else set()
    for key, value in MODEL_RECIPES.get(model_name or "", {}).items():
        if overrides.get(key) is None and key not in in_yaml:
            setattr(cfg, key, value)
    cfg.threads = args.threads
    proto = protocol_from(args)
    for key in ("epochs", "batch_size", "checkpoint_every"):
        low = 0 if key == "checkpoint_every" else 1
        if getattr(cfg, key) < low:
            raise UserError(f"training option {key} must be >= {low}, got {getattr(cfg, key)}")
    if not 0.0 <= cfg.random_erasing <= 1.0:
        raise UserError("training option random_erasing must be in [0, 1], got "
                        f"{cfg.random_erasing}: pass a probability such as "
                        "--train-random-erasing 0.25")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise UserError(f"training option ema_decay must be in [0, 1), got {cfg.ema_decay}: "
                        "pass a decay such as --train-ema 0.999 (0: off)")
    if cfg.weight_decay < 0:
        raise UserError(f"training option weight_decay must be >= 0, got {cfg.weight_decay}: "
                        "pass a value such as --train-weight-decay 5e-4")
    dist.run_on_main(lambda: check_out_dir(out, TRAIN_CHECKPOINT, resume=resume,
                                           what="training checkpoint"))
    arch = Arch.load(arch_path) if arch_path else None
    data = load_dataset(args.data)
    if arch is not None:
        net = arch.build()
        space = arch.space
        c, h, _ = data.input_shape
        if (c, h) != (space.input_channels, space.input_size):
            raise UserError(f"dataset images are {c}x{h}x{h} but the architecture expects "
                            f"{space.input_channels}x{space.input_size}: use the dataset it was searched on")
        if data.train.num_classes != space.num_classes:
            raise UserError(f"dataset has {data.train.num_classes} classes but the architecture "
                            f"{space.num_classes}: use the dataset it was searched on")
        name = f"searched:{Path(arch_path).parent.name}"  # type: ignore[arg-type]
    else:
        assert model_name is not None
        net = build_named(model_name, input_shape=data.input_shape, num_classes=data.train.num_classes)
        name = model_name
        arch = getattr(net, "arch", None)  # zoo nets built from a space are priced like searched ones
    table = None
    if arch is not None:
        def load_table() -> Any:
            t = get_table(arch.space, table_path=args.latency_table, backend=args.backend,
                          proto=proto, out=None)
            if args.latency_table:
                check_table_backend(t, args, args.latency_table)
            return t

        table = dist.run_on_main(load_table)
    ck_path = out / TRAIN_CHECKPOINT
    if resume and ck_path.exists():
        dist.run_on_main(lambda: load_train_checkpoint(ck_path, net) and None)
    # everything is checked: from here on the run folder is written (by rank 0 only)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "train_config.json", {**asdict(cfg), "model": name, "data": str(args.data),
                                               "world": dist.world})
    t0 = time.perf_counter()

    def log_epoch(e: int, r: dict[str, float]) -> None:
        log.info("epoch %d: train loss %.4f", e + 1, r["train_loss"])
        if on_epoch is not None:
            on_epoch(e, r)

    result = train_net(net, data, cfg, progress=bar if dist.is_main else (lambda it, d, n: it),
                       on_epoch=log_epoch, checkpoint=ck_path, resume=resume, dist=dist,
                       flip_tta=True)
    train_s = time.perf_counter() - t0
    if not dist.is_main:
        return {"model": name, "test_accuracy": result["accuracy"], "test_loss": result["loss"]}
    net = net.to(memory_format=torch.contiguous_format)
    lat = measure_net(net, data.input_shape, backend=args.backend, proto=proto)
    metrics: dict[str, Any] = {
        "model": name, "test_accuracy": result["accuracy"], "test_loss": result["loss"],
        "params": count_params(net), "macs": count_macs(net, data.input_shape),
        "latency_ms": lat["ms"], "latency_spread_ms": lat["spread_ms"],
        "latency_backend": args.backend, "latency_batch_size": proto.batch_size,
        "latency_threads": proto.threads, "train_wall_s": train_s, "epochs": cfg.epochs,
        "test_accuracy_flip_tta": result["accuracy_flip_tta"],
    }
    if arch is not None and table is not None:
        metrics["predicted_latency_ms"] = predict_arch_ms(arch, table)
        metrics["arch"] = arch.ops
    torch_save(out / "model.pt", {"kind": "directnas-model", "name": name,
                                  "arch": arch.to_dict() if arch else None,
                                  "model": model_name, "state_dict": net.state_dict(),
                                  "input_shape": data.input_shape,
                                  "num_classes": data.train.num_classes,
                                  "mean": data.mean, "std": data.std,
                                  "recipe": {k: getattr(cfg, k) for k in RECIPE_KEYS}})
    write_json(out / "metrics.json", metrics)
    pred = f", predicted {metrics['predicted_latency_ms']:.3f} ms" if "predicted_latency_ms" in metrics else ""
    print(f"test accuracy {100 * metrics['test_accuracy']:.2f} %, latency {lat['ms']:.3f} ms{pred} "
          f"(batch {proto.batch_size}, {proto.threads} threads, {args.backend})")
    print(f"test accuracy with flip test-time augmentation (image and mirror image averaged, 2x "
          f"the compute): {100 * metrics['test_accuracy_flip_tta']:.2f} %")
    print(f"metrics: {(out / 'metrics.json').resolve()}\nmodel: {(out / 'model.pt').resolve()}")
    return metrics


def run(args: argparse.Namespace) -> int:
    do_train(args, Path(args.out), arch_path=args.arch, model_name=args.model)
    return 0

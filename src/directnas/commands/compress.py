"""directnas compress: prune / share / huffman / fixed-point / lowrank / ternary / int8 a trained
net (one method or a comma chain); metrics.json, layers.json, the encoded model."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from directnas.commands.common import bar
from directnas.compress.finetune import FinetuneConfig
from directnas.compress.model_io import load_model
from directnas.compress.pipeline import METHODS, compress, parse_methods
from directnas.compress.state import CompressConfig, State
from directnas.data import load_dataset
from directnas.errors import UserError
from directnas.fileio import read_json, write_json

QUICK_FT = {"epochs": 1, "max_steps": 20}
QUICK = {"prune_steps": 2, "valid_images": 500, "calib_images": 128, "latency_repeats": 10,
         "latency_warmup": 2}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress a trained net (prune, share, huffman, ...)")
    p.add_argument("--model", required=True, help="model.pt written by 'directnas train' (or its folder)")
    p.add_argument("--method", required=True,
                   help=f"a method or a comma chain of: {', '.join(METHODS)} (e.g. prune,share,huffman)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or a dataset folder")
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--finetune-epochs", type=int, help="epochs per retraining (default 2)")
    g.add_argument("--finetune-lr", type=float, help="initial LR of retraining (default 0.01)")
    g.add_argument("--finetune-wd", type=float,
                   help="weight decay of retraining (default 5e-5; 5e-4 kept LeNet-300-100's "
                        "pruning loss within 0.5 points, see docs/compression.md)")
    g.add_argument("--batch-size", type=int, help="retraining batch size (default 128)")
    g.add_argument("--seed", type=int)
    g = p.add_argument_group("method options")
    g.add_argument("--sparsity", type=float, help="prune: overall fraction of weights removed")
    g.add_argument("--tolerance", type=float,
                   help="prune: accuracy drop one layer alone may cost (sensitivity; default 0.01)")
    g.add_argument("--uniform", action="store_true", help="prune: same sparsity in every layer")
    g.add_argument("--allocation", choices=("equal-drop", "per-weight"),
                   help="prune: split of --sparsity over layers: the same drop per layer alone "
                        "(equal-drop, default) or the least summed drop per weight removed")
    g.add_argument("--prune-steps", type=int, help="prune: prune + retrain rounds (default 3)")
    g.add_argument("--bits-conv", type=int, help="share: bits per conv weight (default 8)")
    g.add_argument("--bits-fc", type=int, help="share: bits per linear weight (default 5)")
    g.add_argument("--bits", type=int, dest="fixed_bits", help="fixed-point: bit width (default 8)")
    g.add_argument("--gap-bits", type=int, help="bits per relative sparse index (default 5)")
    g.add_argument("--speedup", type=float, help="lowrank: target speed-up per conv (default 2)")
    g.add_argument("--threshold", type=float, dest="ternary_threshold",
                   help="ternary: threshold t as a fraction of max|w| (default 0.05)")
    p.add_argument("--threads", type=int, default=2, help="threads for fine-tuning and latency")
    p.add_argument("--repeats", type=int, help="timed latency repeats (default 50)")
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke budget")
    p.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> CompressConfig:
    ft: dict[str, Any] = dict(QUICK_FT) if args.quick else {}
    ft.update({k: v for k, v in {"epochs": args.finetune_epochs, "lr": args.finetune_lr,
                                 "weight_decay": args.finetune_wd,
                                 "batch_size": args.batch_size, "seed": args.seed}.items()
               if v is not None})
    top: dict[str, Any] = dict(QUICK) if args.quick else {}
    names = ("sparsity", "tolerance", "prune_steps", "bits_conv", "bits_fc", "fixed_bits",
             "gap_bits", "speedup", "ternary_threshold", "allocation")
    top.update({k: getattr(args, k) for k in names if getattr(args, k) is not None})
    if args.repeats is not None:
        top["latency_repeats"] = args.repeats
    cfg = CompressConfig(finetune=replace(FinetuneConfig(), **ft), uniform=args.uniform,
                         threads=args.threads, **top)
    check(cfg)
    return cfg


def check(cfg: CompressConfig) -> None:
    if cfg.sparsity is not None and not 0 < cfg.sparsity < 1:
        raise UserError(f"--sparsity {cfg.sparsity} must be a fraction in (0, 1)")
    for flag, v, lo, hi in (("--bits-conv", cfg.bits_conv, 1, 12), ("--bits-fc", cfg.bits_fc, 1, 12),
                            ("--bits", cfg.fixed_bits, 2, 16), ("--gap-bits", cfg.gap_bits, 1, 12)):
        if not lo <= v <= hi:
            raise UserError(f"{flag} {v} must be between {lo} and {hi}")
    if cfg.speedup <= 1:
        raise UserError(f"--speedup {cfg.speedup} must be > 1")
    if not 0 < cfg.ternary_threshold < 1:
        raise UserError(f"--threshold {cfg.ternary_threshold} must be in (0, 1)")
    if cfg.prune_steps < 1 or cfg.finetune.epochs < 0:
        raise UserError("--prune-steps must be >= 1 and --finetune-epochs >= 0")
    if cfg.finetune.weight_decay < 0:
        raise UserError(f"--finetune-wd {cfg.finetune.weight_decay} must be >= 0")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'layer':<14}{'type':<6}{'params':>9}{'density':>9}{'values':>8}{'bytes':>9}"
          f"{'ratio':>8}  encoding")
    for r in rows:
        print(f"{r['layer']:<14}{r['type']:<6}{r['params']:>9}{r['density']:>9.3f}"
              f"{r['unique_values']:>8}{r['bytes_encoded']:>9}{r['compression_ratio']:>7.1f}x"
              f"  {r['encoding']}")


def run(args: argparse.Namespace) -> int:
    methods = parse_methods(args.method)
    cfg = config_from(args)
    net, meta = load_model(args.model)
    data = load_dataset(args.data)
    if tuple(meta["input_shape"]) != data.input_shape:
        raise UserError(f"the model takes {tuple(meta['input_shape'])} images but {args.data} has "
                        f"{data.input_shape}: use the dataset it was trained on")
    torch.set_num_threads(args.threads)  # fine-tuning and latency alike
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "compress_config.json", {**asdict(cfg), "methods": methods,
                                              "model": str(args.model), "data": str(args.data)})
    m = compress(State(net=net, meta=meta, data=data, cfg=cfg, out=out, progress=bar), methods)
    print_table(read_json(out / "layers.json"))
    print(f"accuracy {100 * m['accuracy_before']:.2f} % -> {100 * m['accuracy_after']:.2f} %, "
          f"size {m['size_bytes_before']} -> {m['size_bytes_after']} bytes "
          f"({m['compression_ratio']:.1f}x), latency {m['latency_ms_before']:.3f} -> "
          f"{m['latency_ms_after']:.3f} ms ({m['latency_backend']})")
    print(f"metrics: {(out / 'metrics.json').resolve()}\nmodel: {(out / m['compressed_file']).resolve()}")
    return 0

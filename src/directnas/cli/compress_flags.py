"""Compression flags, generated from ``CompressConfig`` and ``FinetuneConfig``: ``compress``
adds them, and ``run --compress-args`` parses its string with them (``cli.run_flags``)."""

from __future__ import annotations

import argparse
from typing import Any

from directnas.cli.flags import Flag, add_flags, flag_values
from directnas.compression.finetune import FinetuneConfig
from directnas.compression.state import CompressConfig

FINETUNE = [
    Flag("epochs", "epochs per retraining (default 2)", name="finetune-epochs"),
    Flag("lr", "initial LR of retraining (default 0.01)", name="finetune-lr"),
    Flag("weight_decay", "weight decay of retraining (default 5e-5; 5e-4 kept LeNet-300-100's "
         "pruning loss within 0.5 points, see docs/compression.md)", name="finetune-wd"),
    Flag("batch_size", "retraining batch size (default 128)"),
    Flag("augment", "random crop + flip in retraining (default: as the model was trained, from "
                    "its model.pt)", name="finetune-augment"),
    Flag("label_smoothing", "label smoothing of retraining (default: the model's training recipe)",
         name="finetune-label-smoothing"),
]
ALLOCATIONS = ("equal-drop", "per-weight")
RECIPE = [
    Flag("target_ratio", "smallest predicted accuracy loss that reaches this compression ratio "
         "(e.g. 40 for 40x); retrains 5 prune rounds of 5 epochs at LR 0.05 unless --prune-steps "
         "/ --finetune-* say otherwise"),
    Flag("max_loss", "largest ratio whose probe loses at most this many accuracy points (e.g. "
                     "1); same retraining budget as --target-ratio"),
    Flag("valid_images", "training images scoring the sensitivity curves"),
    Flag("probe_steps", "--max-loss: retraining steps of each probe"),
]
METHOD = [
    Flag("sparsity", "prune: overall fraction of weights removed"),
    Flag("tolerance", "prune: accuracy drop one layer alone may cost (sensitivity)"),
    Flag("uniform", "prune: same sparsity in every layer", switch="on"),
    Flag("allocation", "prune: split of --sparsity over layers: the same drop per layer alone "
         "(equal-drop, default) or the least summed drop per weight removed", choices=ALLOCATIONS),
    Flag("prune_steps", "prune: prune + retrain rounds"),
    Flag("bits_conv", "share: bits per conv weight"),
    Flag("bits_fc", "share: bits per linear weight"),
    Flag("fixed_bits", "fixed-point: bit width", name="bits"),
    Flag("gap_bits", "bits per relative sparse index"),
    Flag("speedup", "lowrank: target speed-up per conv"),
    Flag("ternary_threshold", "ternary: threshold t as a fraction of max|w|", name="threshold"),
    Flag("int8_formats", "int8: the artifacts to write, a comma list of pte (ExecuTorch + "
         "XNNPACK), onnx (onnxruntime), openvino (OpenVINO + NNCF) (default all three; a "
         "runtime that is not installed is skipped with a warning)"),
    Flag("int8_batch", "int8: batch the fp32 and int8 artifacts are exported and timed at"),
    Flag("calib_images", "int8: training images calibrating the activation ranges"),
]
RUN = [Flag("threads", "threads for fine-tuning and latency"),
       Flag("latency_repeats", "timed latency repeats", name="repeats")]


def add_compress_options(p: argparse.ArgumentParser) -> None:
    """Every option of a compression (not the model, data, methods or output)."""
    add_flags(p.add_argument_group("fine-tuning"), FinetuneConfig, FINETUNE)
    p.add_argument("--seed", type=int)
    add_flags(p.add_argument_group("recipe search (prune / share settings per layer)"),
              CompressConfig, RECIPE)
    add_flags(p.add_argument_group("method options"), CompressConfig, METHOD)
    add_flags(p, CompressConfig, RUN)
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke budget")


def compress_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options flags as ``directnas.compress`` keywords (those given)."""
    finetune = flag_values(args, FINETUNE)
    return {**flag_values(args, [*RECIPE, *METHOD, *RUN]), "quick": args.quick, "seed": args.seed,
            **({"finetune": finetune} if finetune else {})}


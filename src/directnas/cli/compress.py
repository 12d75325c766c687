"""directnas compress: prune / share / huffman / fixed-point / lowrank / ternary / int8 a trained
net (one method or a comma chain); metrics.json, layers.json, the encoded model."""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

from directnas.cli.common import SKIP_HELP, apply_data_options, bar
from directnas.compress.finetune import FinetuneConfig, Progress
from directnas.models.model_file import load_model
from directnas.compress.pipeline import METHODS, compress, parse_methods
from directnas.compress.state import CompressConfig, State
from directnas.deploy.int8 import parse_int8_formats
from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.utils.fileio import read_json, write_json
from directnas.utils.threads import torch_threads

QUICK_FT = {"epochs": 1, "max_steps": 20}
QUICK = {"prune_steps": 2, "valid_images": 500, "calib_images": 128, "latency_repeats": 10,
         "latency_warmup": 2, "latency_rounds": 2}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress a trained net (prune, share, huffman, ...)")
    p.add_argument("--model", required=True, help="model.pt written by 'directnas train' (or its folder)")
    p.add_argument("--method", required=True,
                   help=f"a method or a comma chain of: {', '.join(METHODS)} (e.g. prune,share,huffman)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data", default="fashion-mnist", help="'fashion-mnist' or a dataset folder")
    p.add_argument("--skip-bad-images", action="store_true", help=SKIP_HELP)
    g = p.add_argument_group("fine-tuning")
    g.add_argument("--finetune-epochs", type=int, help="epochs per retraining (default 2)")
    g.add_argument("--finetune-lr", type=float, help="initial LR of retraining (default 0.01)")
    g.add_argument("--finetune-wd", type=float,
                   help="weight decay of retraining (default 5e-5; 5e-4 kept LeNet-300-100's "
                        "pruning loss within 0.5 points, see docs/compression.md)")
    g.add_argument("--batch-size", type=int, help="retraining batch size (default 128)")
    g.add_argument("--seed", type=int)
    g.add_argument("--finetune-augment", action=argparse.BooleanOptionalAction,
                   help="random crop + flip in retraining (default: as the model was trained, "
                        "from its model.pt)")
    g.add_argument("--finetune-label-smoothing", type=float,
                   help="label smoothing of retraining (default: the model's training recipe)")
    g = p.add_argument_group("recipe search (prune / share settings per layer)")
    g.add_argument("--target-ratio", type=float,
                   help="smallest predicted accuracy loss that reaches this compression ratio "
                        "(e.g. 40 for 40x); retrains 5 prune rounds of 5 epochs at LR 0.05 "
                        "unless --prune-steps / --finetune-* say otherwise")
    g.add_argument("--max-loss", type=float,
                   help="largest ratio whose probe loses at most this many accuracy points "
                        "(e.g. 1); same retraining budget as --target-ratio")
    g.add_argument("--valid-images", type=int,
                   help="training images scoring the sensitivity curves (default 2000)")
    g.add_argument("--probe-steps", type=int,
                   help="--max-loss: retraining steps of each probe (default 300)")
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
    g.add_argument("--int8-formats", default="pte,onnx,openvino",
                   help="int8: the artifacts to write, a comma list of pte (ExecuTorch + "
                        "XNNPACK), onnx (onnxruntime), openvino (OpenVINO + NNCF) (default all "
                        "three; a runtime that is not installed is skipped with a warning)")
    g.add_argument("--int8-batch", type=int,
                   help="int8: batch the fp32 and int8 artifacts are exported and timed at "
                        "(default 1)")
    g.add_argument("--calib-images", type=int,
                   help="int8: training images calibrating the activation ranges (default 256)")
    p.add_argument("--export", metavar="FORMATS",
                   help="also export the compressed net (pte, onnx, openvino, torchscript, a comma "
                        "list or all) into OUT/export: parity with PyTorch on the test set and its "
                        "latency in its own runtime, saved in metrics.json")
    p.add_argument("--threads", type=int, default=2, help="threads for fine-tuning and latency")
    p.add_argument("--repeats", type=int, help="timed latency repeats (default 50)")
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke budget")
    p.set_defaults(func=run)


# retraining budget of the recipe search (--target-ratio / --max-loss) unless flags set it: the
# schedule that kept LeNet-300-100 within 0.5 points at 40x (docs/compression.md)
SEARCH_FT = {"epochs": 5, "lr": 0.05}
SEARCH = {"prune_steps": 5}
RECIPE_FT_KEYS = ("augment", "label_smoothing", "weight_decay")


def recipe_finetune(meta: dict[str, Any]) -> dict[str, Any]:
    """The retraining options a model.pt's own training recipe implies (empty for old files)."""
    recipe = meta.get("recipe") or {}
    return {k: recipe[k] for k in RECIPE_FT_KEYS if k in recipe}


def config_from(args: argparse.Namespace, meta: dict[str, Any] | None = None) -> CompressConfig:
    """Defaults <- the model's training recipe <- search / quick budgets <- flags."""
    searching = args.target_ratio is not None or args.max_loss is not None
    ft: dict[str, Any] = recipe_finetune(meta or {})
    ft.update(SEARCH_FT if searching else {})
    ft.update(QUICK_FT if args.quick else {})
    ft.update({k: v for k, v in {"epochs": args.finetune_epochs, "lr": args.finetune_lr,
                                 "weight_decay": args.finetune_wd, "augment": args.finetune_augment,
                                 "label_smoothing": args.finetune_label_smoothing,
                                 "batch_size": args.batch_size, "seed": args.seed}.items()
               if v is not None})
    top: dict[str, Any] = dict(SEARCH) if searching else {}
    top.update(QUICK if args.quick else {})
    names = ("sparsity", "tolerance", "prune_steps", "bits_conv", "bits_fc", "fixed_bits",
             "gap_bits", "speedup", "ternary_threshold", "allocation", "target_ratio",
             "valid_images", "probe_steps", "calib_images", "int8_batch")
    top.update({k: getattr(args, k) for k in names if getattr(args, k) is not None})
    if args.max_loss is not None:
        top["max_loss"] = args.max_loss / 100  # points -> fraction
    if args.repeats is not None:
        top["latency_repeats"] = args.repeats
    top["int8_formats"] = tuple(parse_int8_formats(getattr(args, "int8_formats", "pte,onnx,openvino")))
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
    if cfg.target_ratio is not None and cfg.max_loss is not None:
        raise UserError("give --target-ratio or --max-loss, not both")
    if cfg.target_ratio is not None and cfg.target_ratio <= 1:
        raise UserError(f"--target-ratio {cfg.target_ratio:g} must be > 1 (e.g. 40 for 40x)")
    if cfg.max_loss is not None and not 0 <= cfg.max_loss < 1:
        raise UserError(f"--max-loss {100 * cfg.max_loss:g} must be in [0, 100) points (e.g. 1)")
    searching = cfg.target_ratio is not None or cfg.max_loss is not None
    if searching and (cfg.sparsity is not None or cfg.uniform):
        raise UserError("--target-ratio / --max-loss choose the sparsity: drop --sparsity / "
                        "--uniform")
    if cfg.valid_images < 1 or cfg.probe_steps < 1:
        raise UserError("--valid-images and --probe-steps must be >= 1")
    if cfg.calib_images < 1:
        raise UserError(f"--calib-images {cfg.calib_images} must be >= 1")
    if cfg.int8_batch < 1:
        raise UserError(f"--int8-batch {cfg.int8_batch} must be >= 1")
    if cfg.finetune.weight_decay < 0:
        raise UserError(f"--finetune-wd {cfg.finetune.weight_decay} must be >= 0")


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'layer':<14}{'type':<6}{'params':>9}{'density':>9}{'values':>8}{'bytes':>9}"
          f"{'ratio':>8}  encoding")
    for r in rows:
        print(f"{r['layer']:<14}{r['type']:<6}{r['params']:>9}{r['density']:>9.3f}"
              f"{r['unique_values']:>8}{r['bytes_encoded']:>9}{r['compression_ratio']:>7.1f}x"
              f"  {r['encoding']}")


def compress_model(model: str | Path, methods: list[str], out: Path, *, data_spec: str,
                   make_cfg: Callable[[dict[str, Any]], CompressConfig],
                   progress: Progress = bar) -> dict[str, Any]:
    """Load ``model``, compress it with ``methods`` into ``out``, print the summary; metrics."""
    net, meta = load_model(model)
    cfg = make_cfg(meta)
    data = load_dataset(data_spec)
    if tuple(meta["input_shape"]) != data.input_shape:
        raise UserError(f"the model takes {tuple(meta['input_shape'])} images but {data_spec} has "
                        f"{data.input_shape}: use the dataset it was trained on")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "compress_config.json", {**asdict(cfg), "methods": methods,
                                              "model": str(model), "data": str(data_spec)})
    with torch_threads(cfg.threads):  # fine-tuning and latency alike
        m = compress(State(net=net, meta=meta, data=data, cfg=cfg, out=out, progress=progress),
                     methods)
    print_recipe(m)
    print_table(read_json(out / "layers.json"))
    print(f"accuracy {100 * m['accuracy_before']:.2f} % -> {100 * m['accuracy_after']:.2f} %, "
          f"size {m['size_bytes_before']} -> {m['size_bytes_after']} bytes "
          f"({m['compression_ratio']:.1f}x), latency {m['latency_ms_before']:.3f} -> "
          f"{m['latency_ms_after']:.3f} ms ({m['latency_backend']})")
    if "int8" in m["methods_report"]:
        from directnas.compress.int8 import print_summary

        print_summary(m["methods_report"]["int8"])
    for key, what in (("target_ratio_met", "target ratio"), ("max_loss_met", "loss bound")):
        if m.get(key) is False:
            print(f"warning: the {what} was not met (see metrics.json)")
    print(f"metrics: {(out / 'metrics.json').resolve()}\nmodel: {(out / m['compressed_file']).resolve()}")
    return m


def print_recipe(m: dict[str, Any]) -> None:
    r = m["recipe"]
    ft = r["finetune"]
    print(f"retraining: {r['prune_steps']} prune rounds x {ft['epochs']} epochs, LR {ft['lr']:g}, "
          f"weight decay {ft['weight_decay']:g}, label smoothing {ft['label_smoothing']:g}, "
          f"augment {'on' if ft['augment'] else 'off'}")
    if r["layer_sparsity"] is None and r["layer_bits"] is None:
        return
    searched = m["methods_report"]["recipe"]
    goal = (f"target {r['target_ratio']:g}x" if r["target_ratio"] is not None
            else f"max loss {100 * r['max_loss']:g} points")
    print(f"recipe ({goal}): predicted {searched['predicted_ratio']:.1f}x; per layer "
          + ", ".join(f"{n}: sparsity {(r['layer_sparsity'] or {}).get(n, 0):.3f}"
                      + (f" {r['layer_bits'][n]} bits" if r["layer_bits"] else "")
                      for n in searched["sparsity"]))


def export_compressed(out: Path, formats: str, data_spec: str, threads: int = 1) -> dict[str, Any]:
    """Export ``out/model.pt`` (the compressed net, dense weights) into ``out/export``; its
    figures go into ``out/metrics.json`` under ``export``."""
    from directnas.deploy.export import export
    from directnas.utils.fileio import write_json as write

    s = export(out / "model.pt", out / "export", formats=formats, data=data_spec, threads=threads,
               progress=lambda it: bar(list(it), "export"))
    keys = ("format", "path", "runtime_version", "latency_ms", "noise_floor", "top1_agreement",
            "max_abs_diff", "accuracy", "size_bytes", "latency_batch_size", "latency_threads")
    figures = {fmt: {k: r[k] for k in keys if k in r} for fmt, r in s["artifacts"].items()}
    m = read_json(out / "metrics.json")
    m["export"] = figures
    write(out / "metrics.json", m)
    for fmt, r in figures.items():
        print(f"artifact: {r['path']}  ({r['runtime_version']}: {r['latency_ms']:.3f} ms, noise "
              f"floor {100 * r['noise_floor']:.1f} %; accuracy {100 * r['accuracy']:.2f} %, top-1 "
              f"agreement with the compressed PyTorch net {100 * r['top1_agreement']:.2f} %)")
    return m


def run(args: argparse.Namespace) -> int:
    methods = parse_methods(args.method)
    if args.export and "int8" in methods:
        raise UserError("--method int8 writes its own artifacts (--int8-formats): drop --export")
    if args.export:
        from directnas.deploy.export import parse_formats

        parse_formats(args.export)  # a bad format fails before the compression, not after
    compress_model(args.model, methods, Path(args.out), data_spec=args.data,
                   make_cfg=lambda meta: config_from(args, meta))
    if args.export:
        export_compressed(Path(args.out), args.export, args.data)
    return 0


def compress_stage(model_dir: str | Path, out_dir: str | Path, *, max_loss: float | None = None,
                   target_ratio: float | None = None, method: str = "prune,share,huffman",
                   data: str = "fashion-mnist", threads: int = 2, seed: int | None = None,
                   export_format: str | None = None,
                   extra: list[str] | None = None) -> dict[str, Any]:
    """The pipeline's last stage (``directnas run --compress``): exactly ``directnas compress
    --model MODEL_DIR --out OUT_DIR --method METHOD [--max-loss P | --target-ratio R]
    [--export FORMAT] ...`` (``extra``: further compress flags); returns its metrics.json."""
    argv = ["--model", str(model_dir), "--out", str(out_dir), "--method", method, "--data", data,
            "--threads", str(threads)]
    for flag, v in (("--max-loss", max_loss), ("--target-ratio", target_ratio), ("--seed", seed),
                    ("--export", export_format)):
        if v is not None:
            argv += [flag, str(v)]
    argv += ["--skip-bad-images"] if getattr(data, "skip_bad_images", False) else []
    from directnas.cli.main import build_parser  # the very parser of `directnas compress`

    args = apply_data_options(build_parser().parse_args(["compress", *argv, *(extra or [])]))
    run(args)
    return read_json(Path(out_dir) / "metrics.json")

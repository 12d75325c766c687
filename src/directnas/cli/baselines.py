"""directnas baselines: train named models (default: the MobileNetV2 family) with the same recipe.

One folder per model (``OUT/mobilenetv2-0.5/``: metrics.json, model.pt, curves.json, tb/) and a
report over the family in ``OUT``.  Re-running skips finished models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.cli.common import bar
from directnas.cli.train import add_train_args, train_kwargs
from directnas.errors import UserError
from directnas.utils.fileio import write_json
from directnas.pipeline.run import train_stage
from directnas.models.registry import model_names
from directnas.report.writer import write_report
from directnas.models.zoo.mobilenetv2 import WIDTHS, model_name

DEFAULT_MODELS = [model_name(float(w)) for w in WIDTHS]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baselines", help="train the MobileNetV2 family (or --models) with the same recipe")
    p.add_argument("--models", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                   default=DEFAULT_MODELS, help=f"comma list of named models (default {','.join(DEFAULT_MODELS)})")
    add_train_args(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files")
    p.add_argument("--out", required=True, help="folder for one sub-folder per model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    unknown = [m for m in args.models if m not in model_names()]
    if unknown or not args.models:
        raise UserError(f"unknown model(s) {', '.join(unknown) or '(none given)'}: use --models with "
                        f"names from {', '.join(model_names())}")
    out = Path(args.out)
    rows = []
    options = {**train_kwargs(args), "progress": bar}
    for name in args.models:
        folder = out / name
        print(f"== {name} -> {folder}")
        m = train_stage(folder, name, args.data, options=options, key_extra={"model": name},
                        tensorboard=not args.no_tensorboard, say=print)
        rows.append({"model": name, "folder": str(folder.resolve()),
                     **{k: m[k] for k in ("test_accuracy", "latency_ms", "predicted_latency_ms",
                                          "params", "macs", "latency_backend") if k in m}})
    write_json(out / "baselines.json", {"models": rows})
    write_report([out], out, title=f"baselines {out.name}")
    print()
    for r in rows:
        print(f"{r['model']:<18} test accuracy {100 * r['test_accuracy']:6.2f} %  "
              f"latency {r['latency_ms']:.3f} ms  params {r['params']:,}")
    print(f"summary: {(out / 'baselines.json').resolve()}\nreport: {(out / 'report.md').resolve()}")
    return 0

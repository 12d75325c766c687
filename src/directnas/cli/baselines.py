"""directnas baselines: train named models (default: the MobileNetV2 family) with the same recipe.

One folder per model (``OUT/mobilenetv2-0.5/``: metrics.json, model.pt, curves.json, tb/) and a
report over the family in ``OUT``.  Re-running skips finished models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas import api
from directnas.cli.common import bar
from directnas.cli.flags import add_out_args
from directnas.cli.train_flags import add_train_args, train_kwargs
from directnas.models.zoo.mobilenetv2 import WIDTHS, model_name

DEFAULT_MODELS = [model_name(float(w)) for w in WIDTHS]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baselines", help="train the MobileNetV2 family (or --models) with the same recipe")
    p.add_argument("--models", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                   default=DEFAULT_MODELS, help=f"comma list of named models (default {','.join(DEFAULT_MODELS)})")
    add_train_args(p)
    p.add_argument("--seed", type=int)
    p.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files")
    add_out_args(p, "folder for one sub-folder per model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    rows = api.baselines(args.models, args.data, out=out,
                         train_options={**train_kwargs(args), "progress": bar},
                         tensorboard=not args.no_tensorboard, say=print, force=args.force)
    print()
    for r in rows:
        print(f"{r['model']:<18} test accuracy {100 * r['test_accuracy']:6.2f} %  "
              f"latency {r['latency_ms']:.3f} ms  params {r['params']:,}")
    print(f"summary: {(out / 'baselines.json').resolve()}\nreport: {(out / 'report.md').resolve()}")
    return 0

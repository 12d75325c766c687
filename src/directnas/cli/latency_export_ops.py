"""directnas latency export-ops: a space's ops as ONNX for scripts/ondevice_profile.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from directnas.cli.common import bar
from directnas.errors import UserError
from directnas.latency.ondevice import export_ops
from directnas.space.space import load_space


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-ops",
                       help="export a space's ops as ONNX for scripts/ondevice_profile.py")
    p.add_argument("--space", default="fashion-mnist", help="preset name or YAML path")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--latency-batch", type=int, default=1, help="batch size of the exported ops")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.latency_batch < 1:
        raise UserError("--latency-batch must be >= 1")
    space = load_space(args.space)
    manifest = export_ops(space, args.out, batch_size=args.latency_batch,
                          progress=lambda it: bar(it, "export ops", len(it)))  # type: ignore
    n = len(json.loads(manifest.read_text())["ops"])
    print(f"op bundle: {Path(args.out).resolve()} ({n} ONNX ops of {space.name}); on the "
          f"device run: python3 ondevice_profile.py {args.out} --out device.json")
    return 0

"""directnas export: a trained net as deployment artifacts (pte, onnx, openvino, torchscript),
each checked against PyTorch on the test set and timed in its own runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas import api
from directnas.cli.common import bar
from directnas.cli.flags import add_out_args
from directnas.runtimes import formats


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained net for a runtime, check parity, time it")
    p.add_argument("model", help="a run folder, its train/ folder or a model.pt")
    p.add_argument("--format", default="all", help=f"{'|'.join(formats())}|all (default all), "
                                                   "or several comma-separated")
    add_out_args(p, "folder for the artifacts, export.json, README.md (not the model's own)")
    p.add_argument("--data", help="test data for the parity check (default: what it trained on)")
    p.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    p.add_argument("--latency-batch", type=int, default=1,
                   help="batch size of fixed-shape artifacts and of the timing (default 1)")
    p.add_argument("--limit", type=int, help="check parity on the first N test images only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    r = api.export(args.model, args.out, formats=args.format, data=args.data, threads=args.threads,
                   rounds=args.rounds, batch_size=args.latency_batch, limit=args.limit,
                   progress=lambda it: bar(list(it), "export"), force=args.force)
    for fmt, a in r.artifacts.items():
        print(f"{fmt:<12} {a['path']}\n  {a['runtime_version']}: top-1 agreement "
              f"{100 * a['top1_agreement']:.2f} % on {a['test_images']} test images, max abs "
              f"logit diff {a['max_abs_diff']:.1e}, accuracy {100 * a['accuracy']:.2f} % "
              f"(PyTorch {100 * a['torch_accuracy']:.2f} %), latency {a['latency_ms']:.3f} ms "
              f"(batch {a['latency_batch_size']}, {a['latency_threads']} thread(s), noise floor "
              f"{100 * a['noise_floor']:.1f} %)")
    print(f"export: {(Path(args.out) / 'export.json').resolve()}, how to run: "
          f"{(Path(args.out) / 'README.md').resolve()}")
    return 0

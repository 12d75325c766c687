"""directnas compress: prune / share / huffman / fixed-point / lowrank / ternary / int8 a trained
net (one method or a comma chain); metrics.json, layers.json, the encoded model."""

from __future__ import annotations

import argparse

from directnas import api
from directnas.cli.common import bar
from directnas.cli.compress_flags import add_compress_options, compress_options
from directnas.cli.data_flags import add_data_args
from directnas.cli.flags import add_out_args
from directnas.compression.pipeline import METHODS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="compress a trained net (prune, share, huffman, ...)")
    p.add_argument("--model", required=True, help="model.pt written by 'directnas train' (or its folder)")
    p.add_argument("--method", required=True,
                   help=f"a method or a comma chain of: {', '.join(METHODS)} (e.g. prune,share,huffman)")
    add_out_args(p, "output folder (not the model's own)")
    add_data_args(p, help="'fashion-mnist' or a dataset folder (default: what the model trained on)")
    p.set_defaults(data=None)
    add_compress_options(p)
    p.add_argument("--export", metavar="FORMATS",
                   help="also export the compressed net (pte, onnx, openvino, torchscript, a comma "
                        "list or all) into OUT/export: parity with PyTorch on the test set and its "
                        "latency in its own runtime, saved in metrics.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    r = api.compress(args.model, args.data, out=args.out, method=args.method, export=args.export,
                     progress=bar, say=print, force=args.force, **compress_options(args))
    print(f"metrics: {(r.out / 'metrics.json').resolve()}\nmodel: {r.compressed_path.resolve()}")
    return 0

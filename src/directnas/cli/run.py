"""directnas run: profile -> search -> train from scratch -> test accuracy -> measured latency -> report.

One resumable run folder (re-run the same command to continue; finished stages are skipped)::

    DIR/latency.json          the latency table (profiled once, or a copy of --latency-table)
    DIR/search/               directnas search's outputs, curves.json, tb/ (TensorBoard)
    DIR/train/                directnas train's outputs, curves.json, tb/
    DIR/report.md, report.json, *.png

A target is ms (``1.5``) or a multiple of the space's fastest net (``1.5x``), timed on this device
before the search when the run profiles its own table (``hardware.near_target.anchor_target``).
Several targets (``--target-latency 1.2,1.5,2.0``) give one search + train each in ``DIR/t1.2/``
... and a report over all of them in ``DIR``.  Every stage folder keeps the options it was made
with (``stage.json``); re-running with other options is refused rather than mixing two configs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.pipeline import run as pipeline
from directnas.cli.common import bar, parse_target
from directnas.cli.search import add_search_args, search_kwargs
from directnas.cli.train import train_kwargs
from directnas.utils.fileio import read_json
from directnas.latency.near_target import NEAR_NETS

# run's training flags -> TrainConfig fields (--epochs, --lr, ... belong to the search)
TRAIN_FLAGS = {"train_epochs": "epochs", "train_batch_size": "batch_size", "train_lr": "lr",
               "train_weight_decay": "weight_decay", "train_random_erasing": "random_erasing",
               "train_ema": "ema_decay"}


def parse_targets(text: str) -> list[float | str]:
    """``1.5``, ``1.2,1.5,2.0`` (ms) or multiples of the fastest net (``1.6x``, ``1.3x,2x``)."""
    values = [parse_target(v) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give a target latency, e.g. 1.5 (ms), 1.6x or 1.2,1.5,2.0")
    return list(dict.fromkeys(values))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="profile, search, train, measure and report in one run folder",
                       conflict_handler="resolve")
    add_search_args(p)
    p.add_argument("--target-latency", type=parse_targets, dest="targets",
                   help="target latency in ms (1.5) or as a multiple of the space's fastest net as "
                        "timed on this device before the search (1.6x; on the table when it is given "
                        "with --latency-table); several (1.2,1.5,2.0): one search + train each")
    p.add_argument("--near-target-nets", type=int, default=NEAR_NETS, metavar="N",
                   help="when the table is profiled by this run: time N whole nets predicted near "
                        "each target and re-anchor the table on them before the search "
                        f"(default {NEAR_NETS}; 0: off)")
    p.add_argument("--train-config", help="YAML file of training options")
    p.add_argument("--train-epochs", type=int, help="training epochs of the searched net")
    p.add_argument("--train-batch-size", type=int)
    p.add_argument("--train-lr", type=float)
    p.add_argument("--train-weight-decay", type=float,
                   help="L2 on conv/linear weights (default 5e-5)")
    p.add_argument("--train-random-erasing", type=float,
                   help="probability of random erasing per training image (default 0: off)")
    p.add_argument("--train-ema", type=float,
                   help="exponential moving average of the weights, decay per step (e.g. 0.999; "
                        "default 0: off)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--compress-max-loss", type=float, metavar="P",
                   help="last stage: directnas compress --max-loss P (points) on each trained net")
    g.add_argument("--compress-target-ratio", type=float, metavar="R",
                   help="last stage: directnas compress --target-ratio R on each trained net")
    p.add_argument("--compress-method", default="prune,share,huffman",
                   help="methods of the compression stage (default prune,share,huffman)")
    p.add_argument("--compress-args", default="", metavar="FLAGS",
                   help="further directnas compress flags of the compression stage, one quoted "
                        "string (e.g. \"--probe-steps 200 --valid-images 1000\")")
    p.add_argument("--compare", nargs="+", default=[], metavar="DIR",
                   help="finished baseline/run folders to add to the report's accuracy-latency plane")
    p.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files")
    p.add_argument("--out", required=True, help="run folder (re-run the command to resume)")
    p.add_argument("--resume", action="store_true", help="accepted for symmetry: run always resumes")
    p.set_defaults(func=run)


def _drop(kwargs: dict, *names: str) -> dict:
    return {k: v for k, v in kwargs.items() if k not in names}


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    shared = ("backend", "device", "protocol", "input_size")
    search = _drop(search_kwargs(args), *shared)
    train_options = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()}
    ns = argparse.Namespace(**{**vars(args), "config": args.train_config, "latency_table": None})
    train = _drop(train_kwargs(ns, train_options), *shared, "table")
    results = pipeline.run(args.space, args.data, out=out, target_latency=args.targets,
                           backend=search_kwargs(args)["backend"], table=args.latency_table,
                           protocol=search_kwargs(args)["protocol"], device=args.device,
                           input_size=args.input_size, search=search, train=train,
                           compare=args.compare, tensorboard=not args.no_tensorboard, say=print,
                           progress=bar, near_nets=args.near_target_nets)
    compressed = {}
    if args.compress_max_loss is not None or args.compress_target_ratio is not None:
        import shlex

        from directnas.cli.compress import compress_stage
        from directnas import runtimes

        fmt = None if "int8" in args.compress_method else runtimes.for_backend(
            search_kwargs(args)["backend"]).format
        for r in results:
            cdir = r.folder / "compress"
            if (cdir / "metrics.json").exists() and "export" in read_json(cdir / "metrics.json"):
                print(f"compress: done, reusing {cdir / 'metrics.json'}")
            else:
                compress_stage(r.folder / "train", cdir, max_loss=args.compress_max_loss,
                               target_ratio=args.compress_target_ratio, method=args.compress_method,
                               data=args.data, threads=args.threads, seed=args.seed,
                               export_format=fmt, extra=shlex.split(args.compress_args))
            compressed[r.folder] = read_json(cdir / "metrics.json")
            pipeline.append_compress_section(r.folder / "report.md", compressed[r.folder])
    summary = read_json(out / "report.json")
    print()
    for r in results:
        m = r.metrics
        t = r.arch.meta.get("target_latency_ms")
        print(f"architecture: {(r.folder / 'search' / 'arch.json').resolve()}  [{r.arch.summary()}]")
        print(f"  test accuracy {100 * m['test_accuracy']:.2f} %, measured latency {m['latency_ms']:.3f} ms"
              f" (predicted {m.get('predicted_latency_ms', float('nan')):.3f} ms"
              f"{f', target {t:g} ms' if t else ''}; {m['latency_backend']}, batch 1)")
        if r.exported:
            e = r.exported
            print(f"artifact: {e['path']}  ({e['runtime_version']}: {e['latency_ms']:.3f} ms, "
                  f"noise floor {100 * e['noise_floor']:.1f} %; top-1 agreement with PyTorch "
                  f"{100 * e['top1_agreement']:.2f} %; how to run it: "
                  f"{Path(e['path']).parent / 'README.md'})")
        if r.check:
            c = r.check
            lo, hi = c["window"]
            print(f"  target held: {c['ratio']:.2f} T at the machine's speed now "
                  f"({'inside' if c['held'] else 'outside'} [{lo:.2f} T, {hi:.2f} T]; the near-target "
                  f"nets run at {c['speed_now_over_then']:.2f}x their search-time latency), "
                  f"{c['ratio_ms']:.2f} T against the {c['target_ms']:.4f} ms searched for")
        if r.folder in compressed:
            c = compressed[r.folder]
            print(f"compressed: {(r.folder / 'compress' / c['compressed_file']).resolve()}  "
                  f"({c['compression_ratio']:.1f}x, {c['size_bytes_after']} bytes; accuracy "
                  f"{100 * c['accuracy_before']:.2f} -> {100 * c['accuracy_after']:.2f} %)")
            for x in (c.get("export") or {}).values():
                print(f"  artifact: {x['path']}  ({x['runtime_version']}: {x['latency_ms']:.3f} ms, "
                      f"noise floor {100 * x['noise_floor']:.1f} %)")
    pngs = sorted({p for plots in summary["plots"].values() for p in plots.values()}
                  | ({summary["pareto_plot"]} if summary["pareto_plot"] else set()))
    print(f"report: {(out / 'report.md').resolve()}  (+ report.json)")
    print(f"plots: {', '.join(str((out / p).resolve()) for p in pngs)}")
    if not args.no_tensorboard:
        print(f"curves: tensorboard --logdir {out.resolve()}")
    return 0

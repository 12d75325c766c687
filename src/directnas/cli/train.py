"""directnas train: train a searched Arch (or a named model) from scratch; metrics.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas import api
from directnas.cli.common import bar, log
from directnas.cli.flags import add_out_args
from directnas.cli.train_flags import add_train_args, train_kwargs
from directnas.models.registry import model_names
from directnas.utils.distributed import init_from_env


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a searched architecture or a named model from scratch")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--arch", help="arch.json written by directnas search")
    g.add_argument("--model", help=f"a named model ({', '.join(model_names()) or 'none'})")
    add_train_args(p)
    p.add_argument("--seed", type=int)
    add_out_args(p, "run folder")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.set_defaults(func=run)


def log_epoch(e: int, r: dict[str, float]) -> None:
    log.info("epoch %d: train loss %.4f", e + 1, r["train_loss"])


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    result = api.train(args.arch or args.model, args.data, out=out, resume=args.resume,
                       progress=bar, on_epoch=log_epoch, force=args.force, **train_kwargs(args))
    m = result.metrics
    if not init_from_env().is_main:  # rank 0 speaks for the job
        return 0
    pred = f", predicted {m['predicted_latency_ms']:.3f} ms" if "predicted_latency_ms" in m else ""
    print(f"test accuracy {100 * m['test_accuracy']:.2f} %, latency {m['latency_ms']:.3f} ms{pred} "
          f"(batch {m['latency_batch_size']}, {m['latency_threads']} threads, {m['latency_backend']})")
    print(f"test accuracy with flip test-time augmentation (image and mirror image averaged, 2x "
          f"the compute): {100 * m['test_accuracy_flip_tta']:.2f} %")
    print(f"metrics: {(out / 'metrics.json').resolve()}\nmodel: {(out / 'model.pt').resolve()}")
    return 0

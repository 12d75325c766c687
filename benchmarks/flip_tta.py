"""Test accuracy with and without flip test-time augmentation, and what the flip costs in latency.

For every trained model (a ``model.pt`` or the run folder holding it) this evaluates the test set
twice: plain, and with ``FlipAverage`` (the mean softmax of the image and its mirror image, one
forward pass on a batch of 2 per image).  Then every plain and every flip-averaged net is timed
end to end at batch 1 in ``--rounds`` interleaved rounds (``measure_interleaved``: warm-up +
repeats per round, fresh shuffled order, median of round medians), so the latency ratio is taken
side by side.

    python benchmarks/flip_tta.py runs/s8/e2x-train28 --threads 2 \
        --out benchmarks/results/flip_tta.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from directnas.models.model_file import load_model
from directnas.data.datasets import Batches
from directnas.data.readers import load_dataset
from directnas.utils.fileio import write_json
from directnas import runtimes
from directnas.runtimes import Protocol
from directnas.latency.measure import device_meta, measure_interleaved
from directnas.training.train_net import FlipAverage, evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="model.pt files or run folders of 'directnas train'")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--backend", default="torch-cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", help="write the table as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data)
    shape = (1,) + tuple(data.test.shape[1:])
    proto = Protocol(threads=args.threads, repeats=args.repeats, warmup=args.warmup)
    factory = runtimes.get(args.backend).runner
    test = Batches(data.test, batch_size=500, mean=data.mean, std=data.std, shuffle=False)
    rows, runners = [], {}
    for i, path in enumerate(args.models):
        net, _ = load_model(path)
        plain = evaluate(net, test)["accuracy"]
        flip = evaluate(net, test, flip_tta=True)["accuracy"]
        rows.append({"model": str(path), "accuracy": plain, "accuracy_flip_tta": flip})
        runners[f"{i}:plain"] = factory(net.eval(), shape, proto)
        runners[f"{i}:flip"] = factory(FlipAverage(net).eval(), shape, proto)
    measured = measure_interleaved(runners, proto, rounds=args.rounds)
    print(f"{args.backend}, batch 1, {args.threads} threads, {args.rounds} interleaved rounds x "
          f"({args.warmup} warm-up + {args.repeats} timed), median; "
          f"{device_meta(args.backend, proto)['device']}")
    print(f"{'model':32s} {'acc':>7s} {'acc flip':>8s} {'ms':>7s} {'ms flip':>7s} {'x':>5s}")
    for i, r in enumerate(rows):
        a, b = measured[f"{i}:plain"], measured[f"{i}:flip"]
        r.update(latency_ms=a["ms"], spread_ms=a["spread_ms"], latency_flip_ms=b["ms"],
                 spread_flip_ms=b["spread_ms"])
        print(f"{r['model'][-32:]:32s} {100 * r['accuracy']:6.2f}% "
              f"{100 * r['accuracy_flip_tta']:7.2f}% {a['ms']:7.3f} {b['ms']:7.3f} "
              f"{b['ms'] / a['ms']:5.2f}")
    if args.out:
        write_json(Path(args.out), {"backend": args.backend, "threads": args.threads,
                                    "rounds": args.rounds, "repeats": args.repeats,
                                    "data": args.data, "rows": rows})


if __name__ == "__main__":
    main()

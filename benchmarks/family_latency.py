"""Measured latency of searched nets and of the MobileNetV2 family, side by side in one run.

Every network (each ``--arch`` file and MobileNetV2 at every width) is timed end to end on one
backend in ``--rounds`` interleaved rounds (``measure_interleaved``: warm-up + repeats per round,
a fresh shuffled order each round, median of the per-round medians), so that drift of the
machine hits all alike and the ratios are taken side by side.  Also prints parameters and MACs.

    python benchmarks/family_latency.py --arch runs/demo/search/arch.json --threads 2 \
        --out benchmarks/results/family_latency.json

This is the latency axis of the accuracy-vs-latency plane; the accuracy axis needs every net
trained with the same recipe (``benchmarks/pareto.py``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from directnas.utils.fileio import write_json
from directnas import runtimes
from directnas.runtimes import Protocol
from directnas.latency.measure import device_meta, measure_interleaved
from directnas.models.registry import build_named, model_names
from directnas.space.arch import Arch
from directnas.training.train_net import count_macs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", nargs="*", default=[], help="arch.json files of searched nets")
    p.add_argument("--models", nargs="*", default=[m for m in model_names() if m.startswith("mobilenetv2")])
    p.add_argument("--backend", default="torch-cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--out", help="write the table as JSON here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    proto = Protocol(threads=args.threads, repeats=args.repeats, warmup=args.warmup)
    nets: dict[str, torch.nn.Module] = {}
    shape = (1, 1, 28, 28)
    for path in args.arch:
        arch = Arch.load(path)
        t = arch.meta.get("target_latency_ms")
        nets[f"searched@{t:g}ms" if t else f"searched:{path}"] = arch.build()
        shape = (1, arch.space.input_channels, arch.space.input_size, arch.space.input_size)
    for name in args.models:
        nets[name] = build_named(name, input_shape=shape[1:], num_classes=10)
    factory = runtimes.get(args.backend).runner
    runners = {k: factory(net.eval(), shape, proto) for k, net in nets.items()}
    measured = measure_interleaved(runners, proto, rounds=args.rounds)
    rows = []
    for k, net in nets.items():
        rows.append({"name": k, "latency_ms": measured[k]["ms"], "spread_ms": measured[k]["spread_ms"],
                     "params": sum(q.numel() for q in net.parameters()),
                     "macs": count_macs(net, shape[1:])})
    base = min(r["latency_ms"] for r in rows)
    print(f"{args.backend}, batch 1, {args.threads} threads, {args.rounds} interleaved rounds x "
          f"({args.warmup} warm-up + {args.repeats} timed), median; {device_meta(args.backend, proto)['device']}")
    print(f"{'net':28s} {'latency ms':>10s} {'spread':>8s} {'x fastest':>9s} {'params':>9s} {'MMACs':>8s}")
    for r in rows:
        print(f"{r['name']:28s} {r['latency_ms']:10.3f} {r['spread_ms']:8.3f} {r['latency_ms'] / base:9.2f} "
              f"{r['params']:9d} {r['macs'] / 1e6:8.2f}")
    if args.out:
        write_json(Path(args.out), {"backend": args.backend, "threads": args.threads,
                                    "rounds": args.rounds, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()

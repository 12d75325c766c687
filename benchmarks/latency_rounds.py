"""Diagnostic: every round of an interleaved measurement, per net, to see how a host's speed
moves between rounds (and within one).  Takes a few nets of a `latency validate` report (the
two it over-predicted most, two in the middle, the two it under-predicted most) and the space's
reference net, and times them in shuffled rounds as the table protocol does; prints each
round's p10 and each round's min / median / max of the calls, and writes them as JSON.

    python benchmarks/latency_rounds.py benchmarks/results/photos32_validate.json \
        --space benchmarks/results/photos32_space.yaml --rounds 7 --repeats 20 \
        --out benchmarks/results/photos32_rounds.json
"""
from __future__ import annotations

import argparse
import json
import random
import statistics

from directnas import runtimes
from directnas.latency.measure import reference_arch, summarize, time_runner
from directnas.runtimes import Protocol
from directnas.space.arch import Arch
from directnas.space.ops import ZERO
from directnas.space.space import load_space
from directnas.utils.fileio import write_json
from directnas.utils.threads import torch_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", help="a latency validate JSON (its pairs give the nets)")
    p.add_argument("--space", required=True)
    p.add_argument("--backend", default="executorch-xnnpack")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")
    a = p.parse_args()
    pairs = sorted(json.load(open(a.report))["pairs"],
                   key=lambda q: q["measured_ms"] / q["predicted_ms"])
    mid = len(pairs) // 2
    pick = [pairs[0], pairs[1], pairs[mid - 1], pairs[mid], pairs[-2], pairs[-1]]
    space = load_space(a.space)
    shape = (1, space.input_channels, space.input_size, space.input_size)
    items = {f"n{i}": (Arch(space, [ZERO if o == "-" else o for o in q["arch"].split()])
                       .build().eval(), shape) for i, q in enumerate(pick)}
    items["reference"] = (reference_arch(space).build().eval(), shape)
    proto = Protocol(batch_size=1, threads=1, warmup=10, repeats=a.repeats, stat="p10",
                     rounds=a.rounds)
    runners = runtimes.get(a.backend).make_runners(items, proto)
    rng = random.Random(a.seed)
    rounds: dict[str, list[dict[str, float]]] = {k: [] for k in items}
    with torch_threads(1):
        for _ in range(a.rounds):
            for k in rng.sample(list(items), len(items)):
                t = time_runner(runners[k], proto)
                rounds[k].append({"p10": summarize(t, "p10")["ms"], "min": min(t),
                                  "median": statistics.median(t), "max": max(t)})
    for k, rs in rounds.items():
        q = pick[int(k[1:])] if k != "reference" else None
        head = f"{k:9s}" + (f" validate: predicted {q['predicted_ms']:.2f} measured "
                            f"{q['measured_ms']:.2f}" if q else "")
        print(head + " | p10 per round: " + " ".join(f"{r['p10']:.2f}" for r in rs))
        print(" " * 10 + "min/median/max: " + " ".join(
            f"{r['min']:.2f}/{r['median']:.2f}/{r['max']:.2f}" for r in rs))
    if a.out:
        write_json(a.out, {"report": a.report, "space": a.space, "backend": a.backend,
                           "rounds": a.rounds, "repeats": a.repeats,
                           "nets": {k: {"arch": pick[int(k[1:])]["arch"]} for k in items
                                    if k != "reference"}, "per_round": rounds})


if __name__ == "__main__":
    main()

"""How well the latency table predicts whole networks, per backend (issue 3's bar).

For each configuration BACKEND:CLOCK:STAT (default: the field's protocol ``wall:median`` and the
load-resistant ``cpu:min``, for torch-cpu and onnxruntime-cpu), at batch 1 on the fashion-mnist
space: ``--samples`` random architectures (seeded) and every op of the space
are measured in ``--rounds`` interleaved rounds (``hardware.validate.validate``); reports RMSE,
MAPE, Pearson r and Kendall tau of the table's sum against the measured networks, and of a
learned linear correction fitted on half of the archs and scored on the other half.  Then
compares the two backends' tables: which op each prefers at every layer shape.

    nice -n 15 python benchmarks/latency_validate.py --out latency_validate.json

Bar (torch-cpu, table sum): MAPE <= 5 %, Kendall tau >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from typing import Any

import torch

from directnas.utils.fileio import write_json
from directnas.runtimes import Protocol
from directnas.latency.table import LatencyTable
from directnas.latency.validate import scatter_plot, validate
from directnas.space.ops import ZERO
from directnas.space.space import SearchSpace, load_space

METRICS = ("mape", "kendall_tau", "pearson_r", "rmse_ms")


def op_preferences(space: SearchSpace, tables: dict[str, LatencyTable]) -> dict[str, Any]:
    """Per backend: mean cost of each op relative to k3_e3 at the same layer; and the layers
    where the backends' cheapest-op orders differ."""
    rel: dict[str, dict[str, list[float]]] = {b: defaultdict(list) for b in tables}
    disagree = []
    seen = set()
    for layer in space.layers:
        keys = [k for k in space.layer_keys(layer) if k != ZERO]
        if tuple(keys) in seen:
            continue
        seen.add(tuple(keys))
        ops = [o for o in layer.candidates if o != ZERO]
        orders = {}
        for b, t in tables.items():
            base = t.ms(keys[ops.index("k3_e3")]) if "k3_e3" in ops else t.ms(keys[0])
            for o, k in zip(ops, keys):
                rel[b][o].append(t.ms(k) / base)
            orders[b] = [o for _, o in sorted(zip((t.ms(k) for k in keys), ops))]
        if len({tuple(v) for v in orders.values()}) > 1:
            name = f"in{layer.c_in} out{layer.c_out} s{layer.stride} hw{layer.hw_in}"
            disagree.append({"layer": name, "order": orders})
    return {"relative_to_k3_e3": {b: {o: statistics.fmean(v) for o, v in r.items()}
                                  for b, r in rel.items()},
            "fixed_ms": {b: {k: t.ms(k) for k in space.fixed_keys()} for b, t in tables.items()},
            "layers_with_different_op_order": disagree, "distinct_layer_shapes": len(seen)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="fashion-mnist")
    p.add_argument("--configs", nargs="+", default=[
        "torch-cpu:wall:median", "torch-cpu:cpu:min",
        "onnxruntime-cpu:wall:median", "onnxruntime-cpu:cpu:min"], help="BACKEND:CLOCK:STAT")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="latency_validate.json")
    p.add_argument("--plots", help="folder for one scatter plot PNG per run")
    a = p.parse_args(argv)
    space = load_space(a.space)
    runs, tables = [], {}
    torch.set_num_threads(a.threads)
    print(f"{a.space}: {a.samples} archs + all ops, {a.rounds} interleaved rounds x "
          f"({a.warmup} warm-up + {a.repeats} repeats), batch 1, {a.threads} thread(s); "
          f"load avg {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'backend':<16} {'clock:stat':<11} {'MAPE':>7} {'tau':>6} {'r':>6} {'RMSE ms':>8} "
          f"{'mean ms':>8} | held-out: {'sum MAPE':>8} {'tau':>5} -> {'corr MAPE':>9} {'tau':>5} "
          f"| load  {'s':>5}")
    for config in a.configs:
        backend, clock, stat = config.split(":")
        proto = Protocol(batch_size=1, threads=a.threads, warmup=a.warmup, repeats=a.repeats,
                         stat=stat, clock=clock)
        t0 = time.time()
        report, table = validate(space, backend=backend, proto=proto, samples=a.samples,
                                 rounds=a.rounds, seed=a.seed, fit="basic")
        report["wall_s"] = time.time() - t0
        tables.setdefault(backend, table)
        runs.append(report)
        h = report["holdout"]
        load = report["load_avg_1min"]
        print(f"{backend:<16} {clock + ':' + stat:<11} {100 * report['mape']:6.2f}% "
              f"{report['kendall_tau']:6.3f} {report['pearson_r']:6.3f} {report['rmse_ms']:8.3f} "
              f"{report['mean_measured_ms']:8.3f} | {100 * h['raw']['mape']:7.2f}% "
              f"{h['raw']['kendall_tau']:5.2f} -> {100 * h['corrected']['mape']:8.2f}% "
              f"{h['corrected']['kendall_tau']:5.2f} | {max(load):4.1f} {report['wall_s']:5.0f}",
              flush=True)
        if a.plots:
            scatter_plot(report, os.path.join(a.plots, f"latency_{backend}_{clock}_{stat}.png"))
    prefs = op_preferences(space, tables) if len(tables) > 1 else {}
    if prefs:
        print("\nmean cost relative to k3_e3 at the same layer (first config's table per backend):")
        ops = list(next(iter(prefs["relative_to_k3_e3"].values())))
        print(f"{'op':<8}" + "".join(f"{b:>17}" for b in tables))
        for o in ops:
            print(f"{o:<8}" + "".join(f"{prefs['relative_to_k3_e3'][b][o]:17.2f}" for b in tables))
        print(f"layer shapes whose cheapest-first op order differs between backends: "
              f"{len(prefs['layers_with_different_op_order'])} of {prefs['distinct_layer_shapes']}")
    write_json(a.out, {"space": a.space, "threads": a.threads, "samples": a.samples,
                       "rounds": a.rounds, "repeats": a.repeats, "cpu_count": os.cpu_count(),
                       "runs": [{k: r[k] for k in r if k != "table_meta"} for r in runs],
                       "op_preferences": prefs})
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

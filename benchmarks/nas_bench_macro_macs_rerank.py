"""Can a trained supernet improve on the most-MACs net of a latency window?  The ``macs`` derive
(no training) keeps the net with the most MACs predicted in [0.95 T, T]; on NAS-Bench-Macro it
reads the 94th / 98th / 94th percentile of the p25 / p50 / p75 windows, the default search less
(BENCHMARKS.md).  This probe takes the ``--top`` nets of [0.95 T, T] by MACs (the MACs prior)
and keeps the one a supernet checkpoint scores best: each net's validation accuracy inside the
supernet (weights inherited, BatchNorm re-estimated on ``--calib`` training batches, then
``--batches`` validation batches of 128: 40 is the whole 5,000-image validation split), against
its ground truth, and the Kendall tau of the two over the candidates.

    python benchmarks/nas_bench_macro_macs_rerank.py --data /tmp/cifar10 \\
        --latency benchmarks/results/nas_bench_macro_table/latency.json \\
        --checkpoint runs/nbm/wsfull/s0/tp25/search_checkpoint.pt \\
        --out benchmarks/results/nas_bench_macro_macs_rerank.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nas_bench_macro import BENCH, parse_targets, score, window_stats  # noqa: E402

from directnas.data.readers import load_dataset  # noqa: E402
from directnas.latency.predictor import predict_arch_ms  # noqa: E402
from directnas.latency.table import LatencyTable  # noqa: E402
from directnas.nas.searcher import SearchConfig, Searcher  # noqa: E402
from directnas.space.macs import layer_mmacs  # noqa: E402
from directnas.space.nas_bench_macro import (all_bench_strings, bench_space,  # noqa: E402
                                             from_bench_string, load_bench)
from directnas.utils.fileio import torch_load, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CIFAR-10 image folder (train/, test/)")
    ap.add_argument("--latency", required=True, help="the space's calibrated latency.json")
    ap.add_argument("--checkpoint", required=True, help="a nas-bench-macro search's checkpoint")
    ap.add_argument("--out", required=True, help="JSON written")
    ap.add_argument("--top", type=int, default=8, help="candidates: the window's top nets by MACs")
    ap.add_argument("--calib", type=int, default=10)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--targets", default="p25,p50,p75")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    bench, space = load_bench(BENCH), bench_space()
    table = LatencyTable.load(a.latency)
    per_layer = layer_mmacs(space.layers)
    predicted, macs = {}, {}
    for s in all_bench_strings():
        arch = from_bench_string(space, s)
        predicted[s] = predict_arch_ms(arch, table)
        macs[s] = sum(per_layer[i][layer.candidates.index(op)]
                      for i, (layer, op) in enumerate(zip(space.layers, arch.ops)))
    ck = torch_load(Path(a.checkpoint), what="supernet checkpoint")
    cfg = SearchConfig(**{**ck["config"], "threads": a.threads})
    data = load_dataset(a.data, size=space.input_size)
    s = Searcher(space, data, table, cfg, Path(a.out).parent / ".supernet_probe")
    s.net.load_state_dict(ck["net"])
    out = {"checkpoint": a.checkpoint, "weight_steps": int(ck["state"]["step"]), "top": a.top,
           "calib": a.calib, "batches": a.batches, "targets": []}
    for label, ms in parse_targets(a.targets, predicted):
        stats = window_stats(ms, predicted, bench)
        window = [x for x in predicted if cfg.derive_window * ms <= predicted[x] <= ms]
        cands = sorted(window, key=lambda x: -macs[x])[:a.top]
        rows = []
        for x in cands:
            t0 = time.perf_counter()
            acc = s.supernet_accuracy(from_bench_string(space, x), max_batches=a.batches,
                                      calib_batches=a.calib)
            rows.append({"arch": x, "mmacs": macs[x], "predicted_ms": predicted[x],
                         "supernet_accuracy": acc, "seconds": time.perf_counter() - t0,
                         **score(x, stats, bench)})
        kept = max(rows, key=lambda r: r["supernet_accuracy"])
        tau = kendalltau([r["supernet_accuracy"] for r in rows], [r["mean_acc"] for r in rows])
        out["targets"].append({"target_label": label, "target_ms": ms, "candidates": rows,
                               "kept": kept["arch"],
                               "kept_percentile": kept["percentile_in_window"],
                               "most_macs": rows[0]["arch"],
                               "most_macs_percentile": rows[0]["percentile_in_window"],
                               "candidates_tau": float(tau.statistic)})
        print(f"{label} ({ms:.3f} ms): kept {kept['arch']} {kept['mean_acc']:.2f} % "
              f"(percentile {kept['percentile_in_window']:.0f}); most MACs {rows[0]['arch']} "
              f"{rows[0]['mean_acc']:.2f} % ({rows[0]['percentile_in_window']:.0f}); tau over "
              f"the {len(rows)} candidates {tau.statistic:.2f}", flush=True)
    write_json(Path(a.out), out)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()

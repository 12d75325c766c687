"""How well does a trained supernet read NAS-Bench-Macro's ground truth, and what does the rerank
derive pick with it?  One supernet checkpoint (``search_checkpoint.pt`` or ``warmup_checkpoint.pt``
of a ``nas-bench-macro`` search on CIFAR-10, or a copy of one taken along the run) in, one JSON row
out:

* ``ranking``: Kendall tau between each net's validation accuracy inside the supernet (weights
  inherited, BatchNorm re-estimated on ``--calib`` training batches, the same ``--batches``
  validation batches for every net) and its ground-truth ``mean_acc``, over ``--nets`` nets drawn
  uniformly from the space (the same nets for every checkpoint: seed 0).
* ``rerank``: for each target (``--targets``, percentiles of the predicted latency as in
  ``nas_bench_macro.py``), the rerank derive of the product (``Searcher._rerank``: the constrained
  net and nets drawn from the checkpoint's probabilities inside [0.95 T, T], ``--candidates`` in
  all, the best by supernet accuracy kept), and the kept net's ground truth: its accuracy, its
  percentile among the nets predicted in [0.9 T, T], the window's mean and std, the oracle.

    python benchmarks/nas_bench_macro_supernet.py --data /tmp/cifar10 --latency runs/nbm/latency.json \\
        --checkpoint runs/nbm/s0/warmup_checkpoint.pt --results benchmarks/results/nas_bench_macro_supernet.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nas_bench_macro import BENCH, parse_targets, score, window_stats  # noqa: E402

from directnas.data.readers import load_dataset  # noqa: E402
from directnas.latency.predictor import predict_arch_ms  # noqa: E402
from directnas.latency.table import LatencyTable  # noqa: E402
from directnas.nas.searcher import SearchConfig, Searcher  # noqa: E402
from directnas.space.arch import Arch  # noqa: E402
from directnas.space.nas_bench_macro import (all_bench_strings, bench_space, from_bench_string,  # noqa: E402
                                             load_bench, to_bench_string)
from directnas.utils.fileio import read_json, torch_load, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CIFAR-10 image folder (train/, test/)")
    ap.add_argument("--latency", required=True, help="the space's calibrated latency.json")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--label", help="the row's name (default: the checkpoint path)")
    ap.add_argument("--results", required=True, help="JSON: one row per checkpoint (appended)")
    ap.add_argument("--nets", type=int, default=200)
    ap.add_argument("--calib", type=int, default=5)
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--targets", default="p25,p50,p75")
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    bench, space = load_bench(BENCH), bench_space()
    table = LatencyTable.load(a.latency)
    ck = torch_load(Path(a.checkpoint), what="supernet checkpoint")
    cfg = SearchConfig(**{**ck["config"], "threads": a.threads, "derive": "rerank",
                          "rerank_candidates": a.candidates, "rerank_batches": a.batches})
    data = load_dataset(a.data, size=space.input_size)
    s = Searcher(space, data, table, cfg, Path(a.results).parent / ".supernet_probe")
    s.net.load_state_dict(ck["net"])
    steps = int(ck["state"]["step"])
    t0 = time.perf_counter()
    nets = [str(x) for x in np.random.default_rng(0).choice(sorted(bench), size=a.nets, replace=False)] \
        if a.nets else []
    accs = [s.supernet_accuracy(from_bench_string(space, n), max_batches=a.batches,
                                calib_batches=a.calib) for n in nets]
    row = {"label": a.label or a.checkpoint, "weight_steps": steps, "config": ck["config"],
           "ranking": None, "rerank": []}
    if nets:  # --nets 0: the rerank picks only
        tau = kendalltau(accs, [bench[n].mean_acc for n in nets])
        row["ranking"] = {"nets": nets, "supernet_accuracy": accs, "kendall_tau": float(tau.statistic),
                          "kendall_p": float(tau.pvalue), "calib": a.calib, "batches": a.batches,
                          "seconds": time.perf_counter() - t0}
        print(f"{row['label']}: {steps} weight steps, tau {tau.statistic:.3f} over {a.nets} uniform "
              f"nets (mean supernet accuracy {100 * np.mean(accs):.1f} %)", flush=True)
    predicted = {x: predict_arch_ms(from_bench_string(space, x), table) for x in all_bench_strings()}
    for label, ms in parse_targets(a.targets, predicted):
        t1 = time.perf_counter()
        s.cfg.target_latency_ms = ms
        picked = s.derive()  # the rerank derive: candidates scored, the best kept
        cands = picked.meta["rerank"]
        arch = to_bench_string(picked)
        stats = window_stats(ms, predicted, bench)
        cand = [{"arch": to_bench_string(Arch(space, c["ops"])), "supernet_accuracy": c["supernet_accuracy"],
                 "mean_acc": bench[to_bench_string(Arch(space, c["ops"]))].mean_acc} for c in cands]
        ctau = kendalltau([c["supernet_accuracy"] for c in cand], [c["mean_acc"] for c in cand])
        r = {"target_label": label, "target_ms": ms, "arch": arch, "predicted_ms": predicted[arch],
             "candidates": cand, "candidates_tau": float(ctau.statistic),
             "rerank_s": time.perf_counter() - t1, **score(arch, stats, bench)}
        row["rerank"].append(r)
        print(f"  {label} ({ms:.3f} ms): {arch} {r['mean_acc']:.2f} % (window {r['window_mean']:.2f} "
              f"+- {r['window_std']:.2f}, percentile {r['percentile_in_window']:.0f}, oracle "
              f"{r['oracle_acc']:.2f}); candidates' tau {ctau.statistic:.2f}; {r['rerank_s']:.0f} s",
              flush=True)
    path = Path(a.results)
    rows = read_json(path)["rows"] if path.exists() else []
    rows = [x for x in rows if x["label"] != row["label"]] + [row]
    write_json(path, {"space": space.name, "bench": str(BENCH), "rows": rows})


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()

"""Does the search find better nets than a random draw?  Ground truth from NAS-Bench-Macro.

NAS-Bench-Macro (../shared/data/nas-bench-macro/) holds the CIFAR-10 test accuracy of all 6,561
nets of the ``nas-bench-macro`` preset, each trained three times.  This benchmark searches that
space with directnas on CIFAR-10 (the training split only; the search carves its validation
split from it; the test split is never read) for several latency targets and search seeds, and
reads every found net's real accuracy from the table:

1. ``latency``: the space's latency table in the runtime we ship (executorch-xnnpack, batch 1,
   1 thread), profiled and calibrated, and validated on held-out nets of the space (MAPE, Kendall
   tau, noise floor); the predicted latency of all 6,561 nets and the measured latency of every
   net timed.  (``--latency-from DIR`` takes the ``latency.json`` + ``validate.json`` of an
   earlier ``directnas latency validate --space nas-bench-macro --save-table`` run.)
2. ``targets``: the 25th, 50th and 75th percentile of the predicted latencies (``--targets``),
   each with its window's statistics, its oracle, and the zero-training baseline every search
   must beat: the net with the most MACs predicted in [0.95 T, T] (``macs_net``).
3. ``search``: for each seed, the targets in order, each a ``directnas.search`` with the
   product's default options (``--search-option key=value`` changes one); the targets of a
   seed share the whole search under the default ``loss: none`` (``search_shared.pt``: each
   further target costs its derive), or with a latency loss the supernet's warm-up
   (``warmup_checkpoint.pt``: each further target costs its alpha phase).  Each (seed, target)
   is a run folder: an interrupted benchmark resumes.
4. For each found net: its percentile among the nets whose predicted latency lies in
   [0.9 T, T] (what a random draw of that window gets is the window's mean +- std), the oracle
   (the best net predicted at or below T) and the gap to it, and the search's wall time.
5. ``ranking``: Kendall tau between each net's accuracy inside the trained supernet (inherited
   weights, BatchNorm re-estimated) and its ground truth, over nets drawn uniformly from the
   space and over the nets of the target's window (the first target of each seed).

Results go to ``--results`` (JSON, rewritten after every search) and ``--plot`` (every net as a
grey dot, the oracle front, the found nets)::

    tar xzf ../shared/data/cifar10/cifar10-jpeg.tar.gz -C /tmp/cifar10
    python benchmarks/nas_bench_macro.py --data /tmp/cifar10 --out runs/nbm \\
        --results benchmarks/results/nas_bench_macro.json --plot benchmarks/results/nas_bench_macro.png
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import kendalltau

import directnas
from directnas.data.readers import load_dataset
from directnas.latency.cache import make_protocol
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.table import LatencyTable
from directnas.latency.validate import validate
from directnas.nas.derive import derive_macs
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.space.arch import Arch
from directnas.space.nas_bench_macro import (BenchEntry, all_bench_strings, bench_space,
                                             from_bench_string, load_bench, to_bench_string)
from directnas.space.macs import layer_mmacs
from directnas.utils.fileio import read_json, write_json

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "data" / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
BACKEND = "executorch-xnnpack"
WINDOW = 0.9  # a random draw of the target's latency window: predicted in [0.9 T, T]
log = logging.getLogger("nas_bench_macro")


# ---- 1. latency --------------------------------------------------------------------------------
def latency_stage(out: Path, *, samples: int, source: Path | None) -> tuple[LatencyTable, dict]:
    """The calibrated table and its held-out validation (profiled here unless given)."""
    table_path, report_path = out / "latency.json", out / "validate.json"
    if source is not None and not table_path.exists():
        shutil.copy(source / "latency.json", table_path)
        shutil.copy(source / "validate.json", report_path)
    if not table_path.exists():
        report, table = validate(bench_space(), backend=BACKEND, proto=make_protocol({"threads": 1}),
                                 samples=samples)
        table.save(table_path)
        write_json(report_path, report)
    return LatencyTable.load(table_path), read_json(report_path)


def latency_summary(table: LatencyTable, report: dict, predicted: dict[str, float]) -> dict:
    space = bench_space()
    measured = {to_bench_string(Arch(space, p["arch"].split())): p["measured_ms"]
                for p in report["pairs"]}
    cal = {to_bench_string(Arch(space, m["ops"])): m["ms"]
           for m in (table.correction.fit.get("measured", []) if table.correction else [])}
    floor = float(table.meta.get("call_overhead_ms") or 0.0)
    return {"backend": BACKEND, "protocol": report["protocol"], "held_out_nets": report["samples"],
            "mape": report["mape"], "kendall_tau": report["kendall_tau"],
            "noise_floor": report["noise_floor"], "call_overhead_ms": floor,
            "min_predicted_ms": min(predicted.values()),
            "predicted_at_or_below_call_cost": sum(v <= floor for v in predicted.values()),
            "measured_ms": {"held_out": measured, "calibration": cal},
            "measured_at": table.meta.get("measured_at"), "device": table.meta.get("device")}


# ---- 2. targets and windows --------------------------------------------------------------------
def parse_targets(text: str, predicted: dict[str, float]) -> list[tuple[str, float]]:
    """``p25,p50,p75`` (percentiles of the predicted latencies) or ms values."""
    values = np.array(sorted(predicted.values()))
    out = []
    for t in text.split(","):
        t = t.strip()
        ms = float(np.percentile(values, float(t[1:]))) if t.startswith("p") else float(t)
        out.append((t, ms))
    return out


def window_stats(target_ms: float, predicted: dict[str, float],
                 bench: dict[str, BenchEntry]) -> dict[str, Any]:
    """The nets a random draw of [0.9 T, T] gets, and the oracle at or below T."""
    window = [s for s, ms in predicted.items() if WINDOW * target_ms <= ms <= target_ms]
    accs = [bench[s].mean_acc for s in window]
    below = [s for s, ms in predicted.items() if ms <= target_ms]
    best = max(below, key=lambda s: bench[s].mean_acc)
    return {"nets": len(window), "mean": statistics.mean(accs), "std": statistics.pstdev(accs),
            "best": max(accs), "oracle_arch": best, "oracle_acc": bench[best].mean_acc,
            "oracle_ms": predicted[best], "members": window}


def score(arch: str, stats: dict[str, Any], bench: dict[str, BenchEntry]) -> dict[str, Any]:
    acc = bench[arch].mean_acc
    accs = [bench[s].mean_acc for s in stats["members"]]
    return {"mean_acc": acc, "percentile_in_window": 100.0 * sum(a <= acc for a in accs) / len(accs),
            "window_mean": stats["mean"], "window_std": stats["std"],
            "above_window_mean_in_std": (acc - stats["mean"]) / stats["std"] if stats["std"] else None,
            "oracle_acc": stats["oracle_acc"], "gap_to_oracle": stats["oracle_acc"] - acc}


def macs_net(space: Any, table: LatencyTable, target_ms: float, stats: dict[str, Any],
             bench: dict[str, BenchEntry]) -> dict[str, Any]:
    """The zero-training baseline: the net with the most MACs predicted in [0.95 T, T] (the
    ``macs`` derive, the search's fallback when its supernet has not learned), scored like a
    found net."""
    window = SearchConfig().derive_window
    fixed, per_layer = table.space_latencies(space)
    idx = derive_macs(layer_mmacs(space.layers), per_layer, fixed, target_ms, window=window)
    arch = Arch(space, [l.candidates[i] for l, i in zip(space.layers, idx)])
    s = to_bench_string(arch)
    return {"arch": s, "derive_window": window, "predicted_ms": predict_arch_ms(arch, table),
            "mflops": bench[s].flops / 1e6, **score(s, stats, bench)}


# ---- 3. search and 5. ranking ------------------------------------------------------------------
def ranking(searcher: Searcher, nets: list[str], bench: dict[str, BenchEntry], *,
            calib: int, batches: int) -> dict[str, Any]:
    space = searcher.space
    accs = [searcher.supernet_accuracy(from_bench_string(space, s), max_batches=batches,
                                       calib_batches=calib) for s in nets]
    tau = kendalltau(accs, [bench[s].mean_acc for s in nets])
    return {"nets": nets, "supernet_accuracy": accs, "kendall_tau": float(tau.statistic),
            "kendall_p": float(tau.pvalue)}


def search_one(out: Path, data: Any, table_path: Path, target_ms: float, seed: int,
               options: dict[str, Any], rank: dict[str, Any] | None) -> dict[str, Any]:
    """One search (resumed if its folder holds a checkpoint); ``rank``: nets to rank inside the
    trained supernet when the search ends."""
    ranked: dict[str, Any] = {}
    budget: dict[str, int] = {}
    final_probs: list[list[float]] = []

    def after(searcher: Searcher, arch: Arch) -> None:
        cfg, per_epoch = searcher.cfg, searcher.steps_per_epoch
        budget.update(weight_steps=(cfg.warmup_epochs + cfg.epochs) * per_epoch,
                      warmup_steps=cfg.warmup_epochs * per_epoch)
        final_probs.extend(searcher.net.probs())  # kept: derive rules can be compared offline
        if rank is not None:
            for name, nets in rank["sets"].items():
                ranked[name] = ranking(searcher, nets, rank["bench"], calib=rank["calib"],
                                       batches=rank["batches"])

    found = directnas.search(bench_space(), data, target_latency=target_ms, table=table_path,
                             out=out, seed=seed, resume=(out / "search_checkpoint.pt").exists(),
                             warmup_cache=out.parent / "warmup_checkpoint.pt",
                             after_search=after, **options)
    summary = read_json(out / "search.json")
    row = {"arch": to_bench_string(found.arch), "predicted_ms": found.predicted_latency_ms,
           "search_wall_s": summary["search_wall_s"], "warmup_reused_s": summary.get("warmup_reused_s"),
           "search_reused_s": summary.get("search_reused_s"),
           "supernet_valid_accuracy": found.supernet_valid_accuracy,
           "mean_max_prob": summary["decision"]["mean_max_prob"], **budget}
    if final_probs:
        row["final_probs"] = [[round(float(q), 6) for q in p] for p in final_probs]
    if ranked:
        row["ranking"] = ranked
    if "rerank" in found.arch.meta:  # the candidates the rerank derive scored, with their truth
        row["rerank"] = [{"arch": to_bench_string(Arch(found.space, c["ops"])),
                          "supernet_accuracy": c["supernet_accuracy"]} for c in found.arch.meta["rerank"]]
    return row


# ---- 6. plot -----------------------------------------------------------------------------------
def plot(path: Path, predicted: dict[str, float], bench: dict[str, BenchEntry],
         runs: list[dict[str, Any]], targets: list[tuple[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.array([predicted[s] for s in predicted])
    ys = np.array([bench[s].mean_acc for s in predicted])
    order = np.argsort(xs)
    front = np.maximum.accumulate(ys[order])
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter(xs, ys, s=3, c="0.75", label=f"all {len(xs)} nets (ground truth)")
    ax.plot(xs[order], front, c="k", lw=1, label="oracle front")
    colors = plt.cm.tab10.colors
    for i, (label, ms) in enumerate(targets):
        ax.axvspan(WINDOW * ms, ms, color=colors[i], alpha=0.08)
        mine = [r for r in runs if r["target_label"] == label]
        ax.scatter([r["predicted_ms"] for r in mine], [r["mean_acc"] for r in mine], s=40,
                   color=colors[i], edgecolors="k", zorder=3, label=f"found, target {label} ({ms:.2f} ms)")
    ax.set_ylim(max(80.0, float(np.percentile(ys, 1))), float(ys.max()) + 0.5)
    ax.set_xlabel(f"predicted latency (ms, {BACKEND}, batch 1, 1 thread)")
    ax.set_ylabel("NAS-Bench-Macro CIFAR-10 test accuracy (%, mean of 3)")
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> None:
    """The benchmark plots' PNG (folder made, figure closed)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- the benchmark -----------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="CIFAR-10 image folder (train/, test/): needed for the searches")
    ap.add_argument("--bench", default=str(BENCH), help="nas-bench-macro_cifar10.json")
    ap.add_argument("--out", required=True, help="work folder (resumable)")
    ap.add_argument("--results", required=True, help="results JSON")
    ap.add_argument("--plot", help="PNG of every net, the oracle front and the found nets")
    ap.add_argument("--latency-from", help="folder with latency.json + validate.json to reuse")
    ap.add_argument("--samples", type=int, default=120, help="held-out nets timed (default 120)")
    ap.add_argument("--targets", default="p25,p50,p75")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--search-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a SearchConfig option of every search (YAML value), e.g. epochs=3")
    ap.add_argument("--rank-nets", type=int, default=200, help="uniformly drawn nets ranked (0: off)")
    ap.add_argument("--rank-window-nets", type=int, default=100, help="window nets ranked (at most)")
    ap.add_argument("--rank-calib", type=int, default=5, help="BatchNorm calibration batches per net")
    ap.add_argument("--rank-batches", type=int, default=8, help="validation batches per net")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="", help="subfolder of --out for these search options (a budget "
                    "point of the curve: nas_bench_macro_budget.py); runs of other options are kept")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    import yaml

    options = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in a.search_option)}
    options.setdefault("threads", a.threads)
    # the loss is always part of a run's key: the default changed (hinge until 2026-12-07, then
    # none), and the runs of the old default say "loss": "hinge"
    options.setdefault("loss", SearchConfig.loss)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = load_bench(a.bench)
    space = bench_space()
    table, report = latency_stage(out, samples=a.samples,
                                  source=Path(a.latency_from) if a.latency_from else None)
    predicted = {s: predict_arch_ms(from_bench_string(space, s), table) for s in all_bench_strings()}
    targets = parse_targets(a.targets, predicted)
    windows = {label: window_stats(ms, predicted, bench) for label, ms in targets}
    results_path = Path(a.results)
    results = read_json(results_path) if results_path.exists() else {}
    runs: list[dict[str, Any]] = [r for r in results.get("runs", [])
                                  if r.get("search_options") == options]
    others = [r for r in results.get("runs", []) if r.get("search_options") != options]
    # targets of earlier calls not asked for now are kept (their runs stay in the file too)
    kept = [t for t in results.get("targets", []) if t["label"] not in dict(targets)]
    results.update({"space": space.name, "bench": str(a.bench), "search_options": options,
                    "latency": latency_summary(table, report, predicted),
                    "latency_ms": {s: round(ms, 5) for s, ms in predicted.items()},
                    "targets": [{"label": label, "target_ms": ms,
                                 **{k: v for k, v in windows[label].items() if k != "members"},
                                 "macs_net": macs_net(space, table, ms, windows[label], bench)}
                                for label, ms in targets] + kept})
    for t in results["targets"]:
        m = t["macs_net"]
        print(f"target {t['label']} ({t['target_ms']:.3f} ms): most-MACs net {m['arch']} "
              f"{m['mean_acc']:.2f} % (percentile {m['percentile_in_window']:.0f}, window "
              f"{m['window_mean']:.2f} +- {m['window_std']:.2f}, oracle {m['oracle_acc']:.2f})", flush=True)
    write_json(results_path, {**results, "runs": others + runs})
    if a.data is None:
        print(f"latency: MAPE {100 * report['mape']:.2f} %, tau {report['kendall_tau']:.3f}; "
              "no --data: no searches")
        return
    data = load_dataset(a.data, size=space.input_size)
    rng = np.random.default_rng(0)
    uniform = [str(s) for s in rng.choice(sorted(bench), size=a.rank_nets, replace=False)] \
        if a.rank_nets else []
    done = {(r["seed"], r["target_label"]) for r in runs}
    for seed in (int(s) for s in a.seeds.split(",")):
        for i, (label, ms) in enumerate(targets):
            if (seed, label) in done:
                continue
            members = windows[label]["members"]
            win = [str(s) for s in rng.choice(members, size=min(a.rank_window_nets, len(members)),
                                              replace=False)]
            rank = {"sets": {"uniform": uniform, "window": win}, "bench": bench,
                    "calib": a.rank_calib, "batches": a.rank_batches} if i == 0 and uniform else None
            row = search_one(out / a.tag / f"s{seed}" / f"t{label}", data, out / "latency.json", ms, seed,
                             options, rank)
            row.update({"seed": seed, "target_label": label, "target_ms": ms,
                        "search_options": options, **score(row["arch"], windows[label], bench)})
            runs.append(row)
            write_json(results_path, {**results, "runs": others + runs})
            print(f"seed {seed} target {label} ({ms:.3f} ms): {row['arch']} {row['mean_acc']:.2f} % "
                  f"(window {row['window_mean']:.2f} +- {row['window_std']:.2f}, percentile "
                  f"{row['percentile_in_window']:.0f}, oracle {row['oracle_acc']:.2f}), "
                  f"{row['search_wall_s'] / 60:.1f} min", flush=True)
    if a.plot:
        plot(Path(a.plot), predicted, bench, runs, targets)


if __name__ == "__main__":
    main()

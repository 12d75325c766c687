"""The search's ground-truth quality against its budget, from ``nas_bench_macro.py``'s results.

Each budget point is a set of ``nas_bench_macro.py`` runs with the same search options (the
budget options: ``max_steps``, ``warmup_epochs``, ``epochs``), each in its own ``--tag``
subfolder; the results file keeps every option set's runs.  For each budget this prints, per
target, the ground-truth percentile of the net the default derive (``constrained``) picks among
the nets of the target's window [0.9 T, T], the rerank's pick where the runs have one, and the
search's wall time; budget 0 is the most-MACs net of the window (no training).  Runs whose
options change more than the budget and the derive (another loss, weight sharing) are left
out; ``--loss`` picks whose curve (default: the product's default loss, ``none``; the runs
before the default changed to it say ``loss: hinge``).  With ``--plot``: percentile against weight steps, one line per target, the zero-cost line
dashed::

    python benchmarks/nas_bench_macro.py --data /tmp/cifar10 --out runs/nbm --tag b110 \\
        --results benchmarks/results/nas_bench_macro.json --seeds 0 --targets p25 \\
        --search-option derive=rerank --search-option max_steps=110 --rank-nets 0
    python benchmarks/nas_bench_macro_budget.py --results benchmarks/results/nas_bench_macro.json \\
        --plot benchmarks/results/nas_bench_macro_budget.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nas_bench_macro import BENCH, save_figure, score, window_stats  # noqa: E402

from directnas.nas.searcher import SearchConfig  # noqa: E402
from directnas.space.nas_bench_macro import load_bench  # noqa: E402
from directnas.utils.fileio import read_json, write_json  # noqa: E402

BUDGET_KEYS = frozenset({"max_steps", "warmup_epochs", "epochs"})
# options that leave the search itself as it is (the derive reads the same alpha)
NEUTRAL_KEYS = frozenset({"derive", "threads", "loss"})
TRAIN_IMAGES = 45_000  # CIFAR-10's training split less the search's validation carve-out


def weight_steps(run: dict[str, Any]) -> int:
    """Recorded by the benchmark; derived from the options for runs older than the record."""
    if "weight_steps" in run:
        return int(run["weight_steps"])
    cfg = SearchConfig()
    o = run["search_options"]
    batch = int(o.get("batch_size", cfg.batch_size))
    per_epoch = TRAIN_IMAGES // batch
    max_steps = o.get("max_steps", cfg.max_steps)
    per_epoch = per_epoch if max_steps is None else min(per_epoch, int(max_steps))
    return (int(o.get("warmup_epochs", cfg.warmup_epochs)) + int(o.get("epochs", cfg.epochs))) * per_epoch


def constrained_arch(run: dict[str, Any]) -> str:
    """The default derive's net: the rerank's first candidate where the run reranked."""
    return run["rerank"][0]["arch"] if run.get("rerank") else run["arch"]


def curve(results: dict[str, Any], bench: dict[str, Any], *,
          loss: str = "hinge") -> list[dict[str, Any]]:
    predicted = results["latency_ms"]
    stats = {t["label"]: window_stats(t["target_ms"], predicted, bench) for t in results["targets"]}
    rows = [{"budget": "most-MACs net (no training)", "weight_steps": 0, "target": t["label"],
             "seeds": [], "constrained": [t["macs_net"]["arch"]],
             "percentile": t["macs_net"]["percentile_in_window"],
             "mean_acc": t["macs_net"]["mean_acc"], "wall_min": 0.0} for t in results["targets"]]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results["runs"]:
        if set(r["search_options"]) - BUDGET_KEYS - NEUTRAL_KEYS:
            continue  # another search (weight sharing...), not a point of this curve
        if r["search_options"].get("loss", "hinge") != loss:
            continue
        if r["target_label"] in stats:
            groups.setdefault((json.dumps(r["search_options"], sort_keys=True),
                               r["target_label"]), []).append(r)
    for (opts, label), runs in groups.items():
        picks = [constrained_arch(r) for r in runs]
        scored = [score(a, stats[label], bench) for a in picks]
        rerank = [score(r["arch"], stats[label], bench) for r in runs if r.get("rerank")]
        rows.append({
            "budget": opts, "weight_steps": weight_steps(runs[0]), "target": label,
            "seeds": [r["seed"] for r in runs], "constrained": picks,
            "percentile": statistics.mean(s["percentile_in_window"] for s in scored),
            "mean_acc": statistics.mean(s["mean_acc"] for s in scored),
            "rerank_percentile": statistics.mean(s["percentile_in_window"] for s in rerank)
            if rerank else None,
            "wall_min": statistics.median(r["search_wall_s"] for r in runs) / 60})
    return sorted(rows, key=lambda r: (r["target"], r["weight_steps"], r["budget"]))


def plot(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.cm.tab10.colors
    for i, label in enumerate(sorted({r["target"] for r in rows})):
        mine = [r for r in rows if r["target"] == label]
        zero = [r for r in mine if r["weight_steps"] == 0]
        trained = [r for r in mine if r["weight_steps"] > 0]
        ax.plot([r["weight_steps"] for r in trained], [r["percentile"] for r in trained], "o-",
                color=colors[i], label=f"search, target {label} (mean over seeds)")
        for r in zero:
            ax.axhline(r["percentile"], color=colors[i], ls="--", lw=1,
                       label=f"most-MACs net, {label} (no training)")
    ax.axhline(90, color="k", lw=0.8, ls=":", label="the bar: 90th percentile")
    ax.set_xlabel("search budget (weight steps of batch 128, warm-up included)")
    ax.set_ylabel("ground-truth percentile in the window [0.9 T, T]")
    ax.set_ylim(0, 101)
    ax.legend(fontsize=7, loc="lower right")
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="nas_bench_macro.py's results JSON")
    ap.add_argument("--bench", default=str(BENCH), help="nas-bench-macro_cifar10.json")
    ap.add_argument("--plot", help="PNG: percentile against the budget")
    ap.add_argument("--out", help="JSON of the curve's rows")
    ap.add_argument("--loss", default=SearchConfig().loss,
                    help="the search loss whose curve (default: the product's, none; the runs "
                    "from before 2026-12-07 evening say hinge)")
    a = ap.parse_args()
    rows = curve(read_json(a.results), load_bench(a.bench), loss=a.loss)
    print("| target | budget (options) | weight steps | seeds | constrained net(s) | percentile "
          "| ground truth | rerank percentile | search wall, median (min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        rr = "" if r.get("rerank_percentile") is None else f"{r['rerank_percentile']:.0f}"
        print(f"| {r['target']} | {r['budget']} | {r['weight_steps']} | "
              f"{','.join(map(str, r['seeds']))} | {' '.join(sorted(set(r['constrained'])))} | "
              f"{r['percentile']:.0f} | {r['mean_acc']:.2f} | {rr} | {r['wall_min']:.1f} |")
    if a.out:
        write_json(a.out, {"rows": rows})
    if a.plot:
        plot(Path(a.plot), rows)


if __name__ == "__main__":
    main()

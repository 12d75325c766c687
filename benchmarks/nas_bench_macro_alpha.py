"""How well the search's alpha reads the ground truth inside a latency window, beside MACs.

For each finished search of ``nas_bench_macro.py`` (a ``search_checkpoint.pt`` under ``--runs``)
and each target of the results file, over the nets of the target's window [0.9 T, T]: Kendall tau
between a net's log-probability under the search's final alpha (sum over layers of log p) and its
NAS-Bench-Macro accuracy, the same tau for its MACs (the zero-cost line), and the ground-truth
percentile of the window's most probable net and of its ten most probable nets; and the most
probable net of the narrower [0.95 T, T] (what the default ``constrained`` derive picks, its
``derive_window`` being 0.95) with its percentile among the nets of [0.9 T, T].  Reads the
checkpoints under ``--runs`` and the final probabilities the results file keeps per run
(``final_probs``), no training; seconds::

    python benchmarks/nas_bench_macro_alpha.py --runs runs/nbm \\
        --results benchmarks/results/nas_bench_macro.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nas_bench_macro import BENCH, window_stats  # noqa: E402

from directnas.space.nas_bench_macro import NUM_LAYERS, load_bench  # noqa: E402
from directnas.utils.fileio import read_json, torch_load, write_json  # noqa: E402


def log_probs(checkpoint: Path) -> np.ndarray:
    """(layers, 3) log-probabilities of the digits 0/1/2 under the checkpoint's alpha."""
    import torch

    net = torch_load(checkpoint, what="search checkpoint")["net"]
    return np.stack([torch.log_softmax(net[f"mixed.{i}.alpha"].float(), 0).numpy()
                     for i in range(NUM_LAYERS)])


def sources(runs: str | None, results: dict[str, Any]) -> list[tuple[str, str | None, np.ndarray]]:
    """(name, the target searched for, log-probabilities) of every checkpoint under ``runs``
    and of every run in the results file that kept its final probabilities (``final_probs``,
    written since 2026-12-07: readable after the run folders are gone)."""
    out: list[tuple[str, str | None, np.ndarray]] = []
    for ck in sorted(Path(runs).rglob("search_checkpoint.pt")) if runs else []:
        out.append((str(ck.parent.relative_to(runs)), ck.parent.name.removeprefix("t"),
                    log_probs(ck)))
    for r in results.get("runs", []):
        if "final_probs" in r:
            opts = ",".join(f"{k}={v}" for k, v in sorted(r["search_options"].items())
                            if k != "threads")
            out.append((f"results: {opts} s{r['seed']} t{r['target_label']}", r["target_label"],
                        np.log(np.clip(np.asarray(r["final_probs"], dtype=np.float64), 1e-30,
                                       None))))
    return out


def read_window(lp: np.ndarray, members: list[str], bench: dict[str, Any],
                narrow: list[str]) -> dict[str, Any]:
    score = np.array([sum(lp[i, int(c)] for i, c in enumerate(s)) for s in members])
    acc = np.array([bench[s].mean_acc for s in members])
    macs = np.array([bench[s].flops for s in members])
    order = np.argsort(-score)

    def pct(a: float) -> float:
        return float(100 * np.mean(acc <= a))

    pick = max(narrow, key=lambda s: sum(lp[i, int(c)] for i, c in enumerate(s)))
    return {"nets": len(members), "tau_alpha": float(kendalltau(score, acc).statistic),
            "constrained_095": pick, "constrained_095_percentile": pct(bench[pick].mean_acc),
            "tau_macs": float(kendalltau(macs, acc).statistic),
            "most_probable": members[order[0]], "most_probable_percentile": pct(acc[order[0]]),
            "top10_mean_percentile": float(np.mean([pct(acc[j]) for j in order[:10]]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", help="nas_bench_macro.py's --out folder (its checkpoints)")
    ap.add_argument("--results", required=True, help="its results JSON")
    ap.add_argument("--bench", default=str(BENCH))
    ap.add_argument("--out", help="JSON of the rows")
    a = ap.parse_args()
    results, bench = read_json(a.results), load_bench(a.bench)
    pred = results["latency_ms"]
    windows = {t["label"]: window_stats(t["target_ms"], pred, bench)["members"]
               for t in results["targets"]}
    narrow = {t["label"]: [s for s, ms in pred.items()
                           if 0.95 * t["target_ms"] <= ms <= t["target_ms"]]
              for t in results["targets"]}
    rows = []
    print("| search (folder) | window | nets | tau alpha vs truth | tau MACs vs truth "
          "| most probable net (percentile) | top-10 mean percentile "
          "| most probable in [0.95 T, T] (percentile) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, own, lp in sources(a.runs, results):
        for label, members in windows.items():
            r = {"search": name, "window": label, "own_target": label == own,
                 **read_window(lp, members, bench, narrow[label])}
            rows.append(r)
            own = ' (its own)' if r['own_target'] else ''
            print(f"| {r['search']} | {label}{own} | {r['nets']} | {r['tau_alpha']:.2f} | "
                  f"{r['tau_macs']:.2f} | `{r['most_probable']}` "
                  f"({r['most_probable_percentile']:.0f}) | {r['top10_mean_percentile']:.0f} | "
                  f"`{r['constrained_095']}` ({r['constrained_095_percentile']:.0f}) |")
    if a.out:
        write_json(a.out, {"rows": rows})


if __name__ == "__main__":
    main()

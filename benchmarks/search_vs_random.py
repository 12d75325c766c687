"""binary-two search vs the random baseline at the same wall-clock budget (issue 4).

Per seed, run one after the other on an otherwise idle machine:
  1. ``directnas search`` (binary-two, the default schedule) at target T on a fixed latency table;
  2. ``directnas random-search`` with ``--budget-s`` = that search's measured wall time, accepting
     only archs predicted in [0.9 T, T] (the window binary-two's constrained derivation uses);
  3. ``directnas train`` of both archs with the same recipe (``--train-epochs``, same seed);
and print one table row per (seed, method): predicted latency, archs tried, test accuracy.
Each step is skipped when its output exists, so an interrupted run resumes.

    python benchmarks/search_vs_random.py --table runs/demo/latency.json --target 3.5907 \
        --seeds 0 1 --train-epochs 3 --reuse-search 0=runs/demo/search \
        --root runs/cmp --out benchmarks/results/search_vs_random.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path


def sh(args: list[str]) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "directnas", *args], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", required=True, help="latency table JSON (torch-cpu, batch 1)")
    ap.add_argument("--target", type=float, required=True, help="target latency T in ms")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--train-epochs", type=int, default=3)
    ap.add_argument("--reuse-search", action="append", default=[],
                    help="SEED=DIR: a finished binary-two search folder for that seed (same table, "
                         "target and defaults) instead of running it again")
    ap.add_argument("--root", default="runs/cmp")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    reuse = {int(k): Path(v) for k, v in (s.split("=", 1) for s in a.reuse_search)}
    root, rows = Path(a.root), []
    lo_frac = 0.9  # random accepts [0.9 T, T]: centre 0.95 T, tolerance 0.05 / 0.95
    for seed in a.seeds:
        d = root / f"s{seed}"
        bt, rs = d / "binary-two", d / "random"
        if not (bt / "arch.json").exists():
            if seed in reuse:
                shutil.copytree(reuse[seed], bt, dirs_exist_ok=True)
            else:
                sh(["search", "--space", "fashion-mnist", "--latency-table", a.table,
                    "--target-latency", str(a.target), "--seed", str(seed), "--out", str(bt)])
        wall = json.loads((bt / "search.json").read_text())["search_wall_s"]
        if not (rs / "arch.json").exists():
            centre = a.target * (1 + lo_frac) / 2
            sh(["random-search", "--space", "fashion-mnist", "--latency-table", a.table,
                "--target-latency", f"{centre:.4f}", "--tolerance", f"{(1 - lo_frac) / (1 + lo_frac):.5f}",
                "--budget-s", f"{wall:.0f}", "--seed", str(seed), "--out", str(rs)])
        for name, run in (("binary-two", bt), ("random", rs)):
            tr = d / f"{name}-train"
            if not (tr / "metrics.json").exists():
                sh(["train", "--arch", str(run / "arch.json"), "--train-epochs", str(a.train_epochs),
                    "--latency-table", a.table, "--seed", str(seed), "--out", str(tr)])
            m = json.loads((tr / "metrics.json").read_text())
            row = {"seed": seed, "method": name, "budget_s": round(wall, 1),
                   "predicted_latency_ms": m.get("predicted_latency_ms"),
                   "measured_latency_ms": m.get("latency_ms"), "test_accuracy": m["test_accuracy"],
                   "params": m.get("params"), "arch": m.get("arch")}
            if name == "random":
                r = json.loads((rs / "random_search.json").read_text()) \
                    if (rs / "random_search.json").exists() else {}
                row["archs_tried"] = r.get("archs")
                row["wall_s"] = r.get("search_wall_s")
                row["valid_accuracy"] = r.get("valid_accuracy")
            rows.append(row)
    print(f"\ntarget {a.target} ms (random window [{lo_frac * a.target:.3f}, {a.target:.3f}]), "
          f"final training {a.train_epochs} epochs")
    print("| seed | method | budget s | archs tried | predicted ms | measured ms | test acc |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['method']} | {r['budget_s']} | {r.get('archs_tried', 1)} | "
              f"{r['predicted_latency_ms']:.3f} | {r['measured_latency_ms']:.3f} | {r['test_accuracy']:.4f} |")
    if a.out:
        Path(a.out).write_text(json.dumps({"target_ms": a.target, "train_epochs": a.train_epochs,
                                           "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

"""Latency tables fitted from whole-network measurements (HELP's FBNet data, 23 device settings).

Fits on rows 0-3999, tests on rows 4000-4999 for every latency column:
  * ls        plain least squares, constant + per-(layer, op) term (the data README's baseline)
  * additive  ridge with shared terms and a physics prior (GCV), squared error
  * robust    same features, minimum mean absolute relative error (MAPE) -- still a per-op table
  * robust+gbm  robust table times (1 + boosted trees on the one-hot ops, absolute relative loss):
              the non-additive model
  * auto      per column, blocked 4-fold CV on the training rows (never the test rows) picks
              additive / robust / robust+gbm (one-standard-error rule, simplest first)
Then the sample efficiency: held-out MAPE of the additive fit from n = 50 ... 4000 networks,
random rows versus rows chosen from the 4000-row pool by the design (``select_balanced``:
``d-optimal`` = greedy Bayesian D-optimal rows for the additive fit's features, ``coverage`` = the
older even (layer, op) coverage); the design sees only the pool's architectures, never latencies.

    nice -n 15 python benchmarks/latency_fit.py --out latency_fit.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from directnas.latency import fit as F
from directnas.space.space import load_space

DATA = Path("/work/shared/data/help-fbnet-latency/fbnet_5000_archs_latency_ms.csv")
TABLE_SUMS = {"pixel3", "raspi4", "eyeriss", "fpga"}  # per-layer table sums, not measurements
README_LS = {"titan_rtx_1": 0.28, "2080ti_1": 0.80, "1080ti_1": 1.61, "gold_6240": 2.24,
             "gold_6226": 2.79, "silver_4210r": 0.73, "samsung_a50": 4.09, "pixel2": 8.16,
             "essential_ph_1": 10.26, "samsung_s7": 13.78}
PHONES = ("pixel2", "essential_ph_1", "samsung_a50", "samsung_s7")
SIZES = (50, 100, 200, 500, 1000, 4000)


def columns(path: Path) -> list[str]:
    with path.open() as f:
        head = f.readline().strip().split(",")
    return [c for c in head if c not in ("arch_id", "op_idx_list")]


def evaluate(space, model, idx_tr, y_tr, idx_te, y_te) -> dict:
    t0 = time.perf_counter()
    fitted = F.fit_model(space, idx_tr, y_tr, model)
    table = F.to_table(space, fitted, {})
    pred = F.predict_table(table, space, idx_te)
    out = {**F.metrics(pred, y_te), "fit_s": time.perf_counter() - t0, "fitted": fitted.name}
    if "auto" in fitted.additive.info:  # chosen by CV on the training rows only
        out["auto"] = fitted.additive.info["auto"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--columns", nargs="*", help="default: all")
    ap.add_argument("--models", nargs="*", default=["ls", "additive", "robust", "robust+gbm", "auto"])
    ap.add_argument("--efficiency-columns", nargs="*",
                    default=["titan_rtx_1", "gold_6240", "silver_4210r", "samsung_a50", "pixel2"])
    ap.add_argument("--efficiency-models", nargs="*", default=["additive"])
    ap.add_argument("--seeds", type=int, default=3, help="random subsets per size")
    ap.add_argument("--designs", nargs="*", default=list(F.DESIGNS), choices=F.DESIGNS,
                    help="select_balanced criteria to compare (the first is 'balanced_mape')")
    ap.add_argument("--part", choices=("all", "columns", "efficiency"), default="all")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    space = load_space("fbnet-cifar100")
    cols = args.columns or columns(args.data)
    res: dict = {"data": str(args.data), "train_rows": [0, 4000], "test_rows": [4000, 5000],
                 "columns": {}, "efficiency": {}}

    print(f"{'column':15s} " + " ".join(f"{m:>18s}" for m in args.models) + "   (MAPE % / Kendall tau)")
    for c in cols if args.part != "efficiency" else []:
        tr = F.read_measurements(args.data, space, c, (0, 4000))
        te = F.read_measurements(args.data, space, c, (4000, 5000))
        row = {m: evaluate(space, m, tr.idx, tr.ms, te.idx, te.ms) for m in args.models}
        row["table_sums"] = c in TABLE_SUMS
        res["columns"][c] = row
        chosen = f"   auto -> {row['auto']['fitted']}" if "auto" in row else ""
        print(f"{c:15s} " + " ".join(f"{100 * row[m]['mape']:10.2f} / {row[m]['kendall_tau']:.2f}"
                                     for m in args.models) + chosen
              + ("   [table sums]" if row["table_sums"] else ""), flush=True)

    print("\nsample efficiency: held-out MAPE % (random rows: mean of seeds | design rows: "
          + " | ".join(args.designs) + ")")
    for c in args.efficiency_columns if args.part != "columns" else []:
        tr = F.read_measurements(args.data, space, c, (0, 4000))
        te = F.read_measurements(args.data, space, c, (4000, 5000))
        for m in args.efficiency_models:
            out = {}
            for n in SIZES:
                rand = []
                for s in range(args.seeds if n < 4000 else 1):
                    rows = np.random.default_rng(s).choice(4000, n, replace=False)
                    rand.append(evaluate(space, m, tr.idx[rows], tr.ms[rows], te.idx, te.ms)["mape"])
                design = {}
                for d in args.designs:
                    if n < 4000:
                        rows = F.select_balanced(space, tr.idx, n, seed=0, criterion=d)
                        design[d] = evaluate(space, m, tr.idx[rows], tr.ms[rows], te.idx, te.ms)["mape"]
                    else:
                        design[d] = rand[0]
                out[n] = {"random_mape": float(np.mean(rand)), "random_mape_each": rand,
                          "balanced_mape": design[args.designs[0]] if design else float("nan"),
                          "design_mape": design}
            res["efficiency"][f"{c}/{m}"] = out
            print(f"{c:15s} {m:9s} " + "  ".join(
                f"n={n}: {100 * v['random_mape']:.2f}|"
                + "|".join(f"{100 * x:.2f}" for x in v["design_mape"].values())
                for n, v in out.items()), flush=True)
            ref = out[4000]["random_mape"]
            print(f"{'':25s} 200 / 4000-net fit: random {out[200]['random_mape'] / ref:.2f}x, "
                  + ", ".join(f"{d} {x / ref:.2f}x" for d, x in out[200]["design_mape"].items()))

    # bars
    bars = {}
    for c, ref in README_LS.items():
        if c in res["columns"] and "additive" in res["columns"][c]:
            bars[f"additive_vs_readme/{c}"] = 100 * res["columns"][c]["additive"]["mape"] - ref
    for c, row in res["columns"].items():
        if row["table_sums"]:
            continue
        if "ls" in row and "additive" in row:  # within 0.5 points of plain least squares
            bars[f"additive_minus_ls/{c}"] = 100 * (row["additive"]["mape"] - row["ls"]["mape"])
        if "auto" in row and "additive" in row:  # <= 0: auto does not lose to the additive fit
            bars[f"auto_minus_additive/{c}"] = 100 * (row["auto"]["mape"] - row["additive"]["mape"])
        if c in PHONES and "auto" in row and "ls" in row:  # <= 0.8: a fifth below the floor
            bars[f"auto_over_ls/{c}"] = row["auto"]["mape"] / row["ls"]["mape"]
    for key, out in res["efficiency"].items():  # <= 1.5: 200 design nets vs the 4000-net fit
        for d, x in out[200]["design_mape"].items():
            bars[f"design200_over_4000/{d}/{key}"] = x / out[4000]["random_mape"]
    res["bars"] = bars
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""Searched nets vs the MobileNetV2 family on the accuracy-vs-measured-latency plane.

Trains the MobileNetV2 family (``directnas baselines``) and searched nets for several targets
(``directnas run --target-latency T1,T2,...``) with the same training recipe on one dataset and
backend, then writes the plane (``OUT/report/pareto.png``), a report and ``OUT/pareto.json`` with
the latency ratio at equal accuracy (the MobileNetV2 front's latency at each searched net's test
accuracy, interpolated linearly, / the searched net's measured latency).

Full run (CPU-heavy: one training per net, ~20-30 min each on 2 loaded cores)::

    nice -n 15 python benchmarks/pareto.py --out runs/pareto

Smoke run (minutes)::

    nice -n 15 python benchmarks/pareto.py --out /tmp/pareto-smoke --train-epochs 1 --max-steps 20 \
        --search-epochs 1 --warmup-epochs 1 --repeats 10 --warmup 2

Every stage is resumable: re-running the same command skips finished nets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from directnas.cli.main import main as directnas
from directnas.utils.fileio import write_json, write_text
from directnas.latency.table import LatencyTable
from directnas.report.writer import write_report
from directnas.space.space import load_space
from directnas.models.zoo.mobilenetv2 import WIDTHS, model_name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--space", default="fashion-mnist")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--backend", default="torch-cpu")
    p.add_argument("--targets", default="auto",
                   help="target latencies in ms (comma list), or 'auto': --target-fracs of the way "
                        "from the space's fastest to its slowest net on the profiled table")
    p.add_argument("--target-fracs", default="0.1,0.3,0.6")
    p.add_argument("--models", default=",".join(model_name(float(w)) for w in WIDTHS))
    p.add_argument("--train-epochs", type=int, help="epochs for every trained net (default: train's)")
    p.add_argument("--search-epochs", type=int, help="search epochs (default: search's)")
    p.add_argument("--warmup-epochs", type=int, help="search warm-up epochs (default: search's)")
    p.add_argument("--max-steps", type=int, help="cap on steps per epoch for search and training (smoke runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    return p.parse_args(argv)


def auto_targets(table: Path, space: str, fracs: list[float]) -> list[float]:
    """Targets a fraction of the way from the fastest to the slowest net of ``space``."""
    fixed, per_layer = LatencyTable.load(table).space_latencies(load_space(space))
    lo, hi = fixed + sum(map(min, per_layer)), fixed + sum(map(max, per_layer))
    return [round(lo + f * (hi - lo), 3) for f in fracs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proto = ["--backend", args.backend, "--threads", str(args.threads), "--repeats", str(args.repeats),
             "--warmup", str(args.warmup)]
    train = ["--data", args.data, "--seed", str(args.seed)]
    base_cfg: list[str] = []  # --max-steps goes in through the YAML configs
    run_cfg: list[str] = []
    if args.max_steps:
        cfg = out / "max_steps.yaml"
        write_text(cfg, f"max_steps: {args.max_steps}\n")
        base_cfg, run_cfg = ["--config", str(cfg)], ["--config", str(cfg), "--train-config", str(cfg)]
    epochs = ["--train-epochs", str(args.train_epochs)] if args.train_epochs else []
    t0 = time.perf_counter()
    rc = directnas(["baselines", "--out", str(out / "baselines"), "--models", args.models, *train, *epochs,
                    *base_cfg, *proto])
    if rc:
        return rc
    t_base = time.perf_counter() - t0
    table = out / f"latency-{args.backend}.json"
    if not table.exists() and directnas(["profile", "--space", args.space, "--out", str(table), *proto]):
        return 2
    targets = args.targets
    if targets == "auto":
        targets = ",".join(f"{t:g}" for t in auto_targets(table, args.space,
                                                          [float(f) for f in args.target_fracs.split(",")]))
        print(f"targets (fractions {args.target_fracs} of the space's latency range): {targets} ms")
    search = [*(["--epochs", str(args.search_epochs)] if args.search_epochs else []),
              *(["--warmup-epochs", str(args.warmup_epochs)] if args.warmup_epochs else [])]
    rc = directnas(["run", "--space", args.space, "--target-latency", targets, "--latency-table", str(table),
                    "--out", str(out / "searched"), *train, *epochs, *search, *run_cfg, *proto])
    if rc:
        return rc
    summary = write_report([out / "searched", out / "baselines"], out / "report",
                           title=f"searched vs MobileNetV2 on {args.data} ({args.backend})")
    ratios = [c for c in summary["comparisons"] if c["baseline_family"] == "mobilenetv2"]
    best = max((c["ratio"] for c in ratios if c.get("ratio")), default=None)
    result = {"command": "python benchmarks/pareto.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "space": args.space, "data": args.data, "backend": args.backend,
              "targets_ms": [float(t) for t in targets.split(",")],
              "runs": summary["runs"], "comparisons": ratios,
              "best_latency_ratio_at_equal_accuracy": best,
              "baselines_wall_s": t_base, "total_wall_s": time.perf_counter() - t0}
    write_json(out / "pareto.json", result)
    print("\n| net | test accuracy | measured latency (ms) |\n|---|---|---|")
    for r in summary["runs"]:
        if "test_accuracy" in r:
            print(f"| {r['name']} | {100 * r['test_accuracy']:.2f} % | {r['latency_ms']:.3f} |")
    for c in ratios:
        ratio = f"{c['ratio']:.2f}x" if c.get("ratio") else "n/a"
        print(f"{c['searched']}: MobileNetV2 needs {ratio} its latency for the same accuracy ({c['method']})")
    print(f"plane: {(out / 'report' / 'pareto.png').resolve()}\nJSON: {(out / 'pareto.json').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 24's "target held" bar, from the run folders of ``directnas run`` (their target checks).

For every folder holding ``export/target_check.json`` (a run, or each ``t<target>/`` of a run with
several targets): T searched for, the net's prediction, the artifact in its runtime, the speed of
the machine at export against the near-target session, and the artifact against T at that speed
and in ms as searched for.  Prints a markdown table; ``--out`` also writes the rows as JSON.

    directnas run --space fashion-mnist --backend executorch-xnnpack --target-latency 1.2x,2x \\
        --train-epochs 1 --out runs/targets_g
    python benchmarks/target_held.py runs/demo runs/targets_g --out benchmarks/results/target_held_g.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from directnas.latency.near_target import NearTarget
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch


def rows_of(root: Path) -> list[dict]:
    out = []
    for check in sorted(root.glob("**/export/target_check.json")):
        folder = check.parent.parent
        c = json.loads(check.read_text())
        arch = Arch.load(folder / "search" / "arch.json")
        metrics = json.loads((folder / "train" / "metrics.json").read_text())
        near = NearTarget.of(LatencyTable.load(folder / "latency_near.json"))
        assert near is not None, f"{folder / 'latency_near.json'} was not re-anchored"
        out.append({
            "run": str(folder), "spec": near.resolved.spec if near.resolved else None,
            "target_ms": c["target_ms"], "arch": arch.summary(),
            "predicted_ms": metrics.get("predicted_latency_ms"),
            "near_scale": near.scale, "near_noise_floor": near.noise_floor,
            "artifact_ms": c["artifact_ms"], "speed_now_over_then": c["speed_now_over_then"],
            "speed_range": c["speed_range"], "noise_floor": c["noise_floor"],
            "ratio": c["ratio"], "held": c["held"], "ratio_ms": c["ratio_ms"],
            "held_ms": c["held_ms"], "relative": c.get("relative"),
            "test_accuracy": metrics.get("test_accuracy")})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders of directnas run")
    ap.add_argument("--out", help="write the rows as JSON here")
    a = ap.parse_args()
    rows = [r for root in a.runs for r in rows_of(Path(root))]
    if not rows:
        raise SystemExit("no export/target_check.json under the given folders: run `directnas run` "
                         "with a target on a table it profiles (near-target nets on)")
    print("| run | target | net | T (ms) | predicted | artifact | machine now / then (range) | "
          "noise floor | artifact / T now | artifact / T in ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["speed_range"]
        print(f"| {r['run']} | {r['spec'] or '-'} | `{r['arch']}` | {r['target_ms']:.4f} | "
              f"{r['predicted_ms']:.4f} ({r['predicted_ms'] / r['target_ms']:.2f} T) | "
              f"{r['artifact_ms']:.4f} | {r['speed_now_over_then']:.2f} ({lo:.2f}-{hi:.2f}) | "
              f"{100 * (r['noise_floor'] or 0):.1f} % | **{r['ratio']:.2f} T** "
              f"({'held' if r['held'] else 'not held'}) | {r['ratio_ms']:.2f} T "
              f"({'held' if r['held_ms'] else 'not held'}) |")
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

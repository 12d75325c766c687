"""Does re-anchoring the table at the target predict held-out nets there?  (issue 24, target held)

1. ``refine_near_target`` on ``--table`` at ``--target`` (what ``directnas run`` does before a
   search): 8 nets drawn near T are timed and the correction scaled;
2. ``--heldout`` nets (default: the random and searched nets of ``search_vs_random.json``, all
   predicted near T and none of them among the 8) are timed in a second small interleaved
   measurement with the drift reference, as an artifact is;
3. for each held-out net: measured / predicted by the profiled table and by the re-anchored one,
   and the latter in units of the reference net (timed in both sessions: the machine's speed
   drifts between them).

    python benchmarks/near_target.py --table runs/svr/latency_et.json --target 1.5x \
        --backend executorch-xnnpack --heldout benchmarks/results/search_vs_random.json \
        --out benchmarks/results/near_target.json
    python benchmarks/near_target.py --table runs/svr/latency_et.json --target 2x --heldout-random 10 \
        --out benchmarks/results/near_target_2x.json
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from directnas.runtimes import Protocol
from directnas.latency.table import LatencyTable
from directnas.latency.near_target import NearTarget, refine_near_target
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.measure import NOISE, measure_space
from directnas.space.arch import Arch
from directnas.space.space import load_space
from directnas.latency.target import parse_target, resolve_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="fashion-mnist")
    ap.add_argument("--table", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--backend", default="executorch-xnnpack")
    ap.add_argument("--heldout", help="search_vs_random.json (its random + searched archs)")
    ap.add_argument("--heldout-random", type=int, default=0, metavar="N",
                    help="also N nets drawn near T with another seed than the re-anchoring nets")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    space, table = load_space(a.space), LatencyTable.load(a.table)
    target = resolve_target(parse_target(a.target), space, table)
    assert target is not None
    proto = Protocol(threads=1, rounds=a.rounds)
    refined = refine_near_target(table, space, target, backend=a.backend, proto=proto)
    near = NearTarget.of(refined)
    assert near is not None, "no net of the space is predicted near the target"
    held: dict[str, Arch] = {}
    if a.heldout:
        svr = json.loads(Path(a.heldout).read_text())
        held = {f"{g}{i}": Arch(space, row["arch"]) for g in ("random", "searched")
                for i, row in enumerate(svr.get(g, []))}
    if a.heldout_random:
        from directnas.latency.near_target import near_target_archs

        held.update({f"draw{i}": x for i, x in
                     enumerate(near_target_archs(space, table, target, a.heldout_random, seed=1))})
    held = {k: v for k, v in held.items() if all(v.ops != r.ops for r in near.nets)}
    m = measure_space(space, backend=a.backend, proto=proto, rounds=a.rounds, nets=held, skip_ops=None)
    rows = []
    for k, arch in held.items():
        ms = float(m[k]["ms"])
        rows.append({"name": k, "arch": arch.ops, "measured_ms": ms,
                     "predicted_profile_ms": predict_arch_ms(arch, table),
                     "predicted_refined_ms": predict_arch_ms(arch, refined)})
    drift = near.reference_ms / m[NOISE]["ms"]  # the reference net, near-T session / held-out session
    for r in rows:
        r["ratio_profile"] = r["measured_ms"] / r["predicted_profile_ms"]
        r["ratio_refined"] = r["measured_ms"] / r["predicted_refined_ms"]
        r["ratio_refined_reference_units"] = r["ratio_refined"] * drift

    def mape(key: str) -> float:
        return statistics.mean(abs(r[key] - 1) for r in rows)

    res = {"target_ms": target, "backend": a.backend, "table": a.table, "scale": near.scale,
           "near_nets": [r.to_dict() for r in near.nets], "near_noise_floor": near.noise_floor,
           "near_reference_ms": near.reference_ms, "profile_reference_ms": table.meta.get("reference_ms"),
           "heldout_reference_ms": m[NOISE]["ms"], "heldout_noise_floor": m[NOISE]["noise_floor"],
           "heldout": rows,
           "summary": {"heldout_nets": len(rows),
                       "mape_profile": mape("ratio_profile"), "mape_refined": mape("ratio_refined"),
                       "median_ratio_profile": statistics.median(r["ratio_profile"] for r in rows),
                       "median_ratio_refined": statistics.median(r["ratio_refined"] for r in rows),
                       "inside_window_refined": sum(0.85 <= r["ratio_refined"] <= 1.10 for r in rows),
                       "inside_window_profile": sum(0.85 <= r["ratio_profile"] <= 1.10 for r in rows),
                       "reference_drift": drift,
                       "median_ratio_refined_reference_units":
                           statistics.median(r["ratio_refined_reference_units"] for r in rows),
                       "mape_refined_reference_units": mape("ratio_refined_reference_units"),
                       "inside_window_refined_reference_units":
                           sum(0.85 <= r["ratio_refined_reference_units"] <= 1.10 for r in rows)}}
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps({**res["summary"], "scale": near.scale, "near_noise_floor": near.noise_floor,
                      "heldout_noise_floor": res["heldout_noise_floor"]}))


if __name__ == "__main__":
    main()

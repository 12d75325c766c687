"""Is the target held?  The artifact timed beside the nets the target was measured on.

A target in ms holds only at the speed the machine ran when it was measured, and on a shared
machine that speed drifts within the hour.  So at export the
nets timed in the near-target session (``latency.near_target``: the nets near T and the fastest
net, whose multiple a relative target is) are timed again, built and interleaved exactly as then,
in the same rounds as the artifact.  Their median ratio now / then is the machine's speed now
against then, and the target at today's speed is T times it.  The artifact is judged against that
(``held``), and against T as it was in ms (``ratio_ms``): both are recorded.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from directnas import runtimes
from directnas.runtimes import Protocol
from directnas.latency.near_target import FASTEST, NEAR_WINDOW, NearTarget
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace

log = logging.getLogger(__name__)
ARTIFACT = "artifact"
CHECK_ROUNDS = 10


def anchors(space: SearchSpace, near: NearTarget) -> dict[str, tuple[Arch, float]]:
    """``name: (net, its latency in the near-target session)`` from a table's near-target
    record: the nets near T and the fastest net."""
    out = {f"near{i}": (Arch(space, list(r.ops)), r.measured_ms) for i, r in enumerate(near.nets)}
    if near.fastest is not None and near.fastest.measured_ms:
        out[FASTEST] = (Arch(space, list(near.fastest.ops)), near.fastest.measured_ms)
    return out


def check_target(fmt: str, artifact: str | Path, space: SearchSpace, near: NearTarget,
                 target_ms: float, *, backend: str, proto: Protocol = Protocol(),
                 rounds: int = CHECK_ROUNDS, seed: int = 0,
                 progress: Callable[[Iterable], Iterable] = lambda it: it) -> dict[str, Any]:
    """Time ``artifact`` (``fmt``) interleaved with the near-target session's nets, as they
    were timed then (``measure_space``: same backend, the session's protocol ``proto``, drift
    reference, null op; ``rounds`` or the protocol's rounds if more), and judge it against
    ``target_ms`` at the machine's speed now (see the module)."""
    from directnas.latency.measure import NOISE, measure_space

    nets = anchors(space, near)
    if not nets:
        raise ValueError("the table holds no near-target nets to check the target against")
    rounds = max(rounds, proto.rounds)
    proto = dataclasses.replace(proto, rounds=rounds)
    threads, batch_size = proto.threads, proto.batch_size
    shape = (batch_size, space.input_channels, space.input_size, space.input_size)
    run_art = runtimes.by_format(fmt).load(Path(artifact), torch.rand(*shape), threads)
    m = measure_space(space, backend=backend, proto=proto, rounds=rounds,
                      nets={k: a for k, (a, _) in nets.items()}, skip_ops=None, seed=seed,
                      progress=progress, extra={ARTIFACT: run_art})
    rows = [{"name": k, "ops": list(a.ops), "then_ms": then, "now_ms": float(m[k]["ms"]),
             "now_over_then": float(m[k]["ms"]) / then} for k, (a, then) in nets.items()]
    speed = float(statistics.median(r["now_over_then"] for r in rows))
    art = float(m[ARTIFACT]["ms"])
    target_now = target_ms * speed
    lo, hi = NEAR_WINDOW
    noise = m.get(NOISE, {})
    out: dict[str, Any] = {
        "target_ms": target_ms, "window": [lo, hi], "backend": backend, "format": fmt,
        "threads": threads, "batch_size": batch_size, "rounds": rounds, "stat": proto.stat,
        "artifact_ms": art, "artifact_spread_ms": float(m[ARTIFACT]["spread_ms"]),
        "anchors": rows, "speed_now_over_then": speed,
        "speed_range": [min(r["now_over_then"] for r in rows),
                        max(r["now_over_then"] for r in rows)],
        "target_now_ms": target_now,
        "ratio_ms": art / target_ms, "ratio": art / target_now,
        "held_ms": lo <= art / target_ms <= hi, "held": lo <= art / target_now <= hi,
        "noise_floor": noise.get("noise_floor"), "reference_ms": noise.get("ms"),
        "reference_then_ms": near.reference_ms,
    }
    fast = next((r for r in rows if r["name"] == FASTEST), None)
    resolved = near.resolved
    if fast is not None and resolved is not None and resolved.spec:
        mult = float(str(resolved.spec)[:-1])
        out["relative"] = {"spec": resolved.spec, "fastest_now_ms": fast["now_ms"],
                           "artifact_over_fastest": art / fast["now_ms"],
                           "ratio": art / (mult * fast["now_ms"])}
    log.info("target check: artifact %.4f ms; near-target nets now %.2fx their session's latency, "
             "so T = %.4f ms at today's speed: %.2f T (%.2f T in ms as searched)", art, speed,
             target_now, out["ratio"], out["ratio_ms"])
    return out


def describe(c: Mapping[str, Any]) -> str:
    """One paragraph for report.md / the console."""
    lo, hi = c["window"]
    verdict = "inside" if c["held"] else "outside"
    text = (f"Timed again beside the {len(c['anchors'])} nets of the near-target session "
            f"({c['rounds']} interleaved rounds, noise floor "
            f"{100 * float(c.get('noise_floor') or 0):.1f} %), the artifact runs at "
            f"{c['artifact_ms']:.4f} ms and those nets at {c['speed_now_over_then']:.2f}x their "
            f"latency then (range {c['speed_range'][0]:.2f}-{c['speed_range'][1]:.2f}): at the "
            f"machine's speed now T is {c['target_now_ms']:.4f} ms and the artifact runs at "
            f"**{c['ratio']:.2f} T** ({verdict} [{lo:.2f} T, {hi:.2f} T]); against T in ms as "
            f"searched for ({c['target_ms']:.4f} ms), at {c['ratio_ms']:.2f} T")
    rel = c.get("relative")
    if rel:
        text += (f"; the fastest net runs at {rel['fastest_now_ms']:.4f} ms beside it, so the "
                 f"artifact is {rel['artifact_over_fastest']:.2f}x it (asked: {rel['spec']})")
    return text + "."

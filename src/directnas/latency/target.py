"""Target latencies: ms (``1.5``) or a multiple of the space's fastest net on the table (``1.6x``)."""

from __future__ import annotations

import logging
import math

from directnas.errors import UserError
from directnas.latency.near_target import NearTarget
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import fastest_ms
from directnas.space.space import SearchSpace

log = logging.getLogger(__name__)
Target = float | str


def parse_target(value: float | int | str) -> Target:
    """``1.5`` / ``"1.5"`` -> 1.5 ms; ``"1.6X"`` -> ``"1.6x"``; UserError for anything else.

    A multiple keeps one command meaningful on any device."""
    t = str(value).strip().lower()
    try:
        number = float(t[:-1] if t.endswith("x") else t)
    except ValueError:
        raise UserError(f"{value!r} is not a target latency: give ms (1.5) or a multiple of the "
                        "fastest net (1.6x)") from None
    if not math.isfinite(number) or not number > 0 or (t.endswith("x") and number < 1):
        raise UserError(f"{value!r} is not a target latency: give finite positive ms (1.5) or a "
                        "multiple >= 1x of the fastest net (1.6x)")
    return f"{number:g}x" if t.endswith("x") else number


def check_reachable(target_ms: float | None, space: SearchSpace, table: LatencyTable) -> None:
    """A target in ms at or above the fastest net of ``space`` on ``table`` (no net is faster)."""
    if target_ms is None:
        return
    fastest = fastest_ms(space, table)
    if target_ms < fastest:
        raise UserError(f"target latency {target_ms:g} ms is below the fastest net of space "
                        f"{space.name!r} ({fastest:.3f} ms on this table): raise --target-latency")


def resolve_target(spec: Target | None, space: SearchSpace, table: LatencyTable) -> float | None:
    """A target in ms: ``spec`` itself, or its multiple of the fastest net on ``table``.

    On a table re-anchored near a target (``run``, ``profile --near-target``) the multiple is
    taken of the fastest net as it was timed there (``latency.near_target.anchor_target``; the
    target it resolved is reused as is).  Older re-anchored tables without that timing: of the
    fastest net as profiled (the scale is measured near the target, not at the fastest net)."""
    if spec is None:
        return None
    spec = parse_target(spec)
    if not isinstance(spec, str):
        return spec
    near = NearTarget.of(table)
    if near is not None and near.resolved is not None and near.resolved.spec == spec:
        return near.resolved.target_ms  # anchored on the fastest net as timed (``anchor_target``)
    fastest = fastest_ms(space, table)
    if near is not None and near.fastest is not None and near.fastest.measured_ms:
        fastest = near.fastest.measured_ms
    elif near is not None and near.scale:
        fastest /= near.scale
    if not fastest > 0:
        raise UserError(f"the fastest net of space {space.name!r} costs {fastest:g} ms on this "
                        f"table, so {spec} of it is no target: give the target in ms or "
                        "re-measure the table")
    target = round(float(spec[:-1]) * fastest, 4)
    log.info("target latency %s of the fastest net (%.3f ms) = %.3f ms", spec, fastest, target)
    return target

"""Target latencies: ms (``1.5``) or a multiple of the space's fastest net on the table (``1.6x``)."""

from __future__ import annotations

import logging

from directnas.errors import UserError
from directnas.hardware.lut import LatencyTable
from directnas.hardware.predictor import fastest_ms
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
    if not number > 0 or (t.endswith("x") and number < 1):
        raise UserError(f"{value!r}: a target must be positive ms, or a multiple >= 1x of the "
                        "fastest net")
    return f"{number:g}x" if t.endswith("x") else number


def resolve_target(spec: Target | None, space: SearchSpace, table: LatencyTable) -> float | None:
    """A target in ms: ``spec`` itself, or its multiple of the fastest net on ``table``.

    On a table re-anchored near a target (``profile --near-target``) the multiple is taken of
    the fastest net as profiled: the re-anchoring scale is measured on nets near the target, not
    near the fastest net, and applying it there would move the target out of the window it was
    measured in (-17 % at 1.2x, +12 % at 2x on one machine; BENCHMARKS.md)."""
    if spec is None:
        return None
    spec = parse_target(spec)
    if not isinstance(spec, str):
        return spec
    fastest = fastest_ms(space, table)
    near = table.meta.get("near_target") or {}
    if near.get("scale"):
        fastest /= float(near["scale"])
    target = round(float(spec[:-1]) * fastest, 4)
    log.info("target latency %s of the fastest net (%.3f ms) = %.3f ms", spec, fastest, target)
    return target

"""The table's learned correction keeps the table's order and never predicts a net at or below
the runtime's per-call cost, even when the nets it is fitted on would pull a free linear fit
below zero at the fast corner."""

from __future__ import annotations

import numpy as np
import pytest

from directnas.latency.fit_design import calibration_design, corner_design
from directnas.latency.predictor import fastest_ms, fit_correction, predict_arch_ms
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch
from directnas.space.ops import ZERO
from directnas.space.space import SearchSpace, load_space


def _table(space: SearchSpace, rng: np.random.Generator, overhead: float) -> LatencyTable:
    """A generated table: every op costs a random 0.05-1 ms (zero ops 0)."""
    entries = {k: {"ms": float(rng.uniform(0.05, 0.3))} for k in space.fixed_keys()}
    for layer in space.layers:
        for key in space.layer_keys(layer):
            if key != ZERO and key not in entries:
                entries[key] = {"ms": float(rng.uniform(0.05, 1.0))}
    return LatencyTable({"backend": "generated", "call_overhead_ms": overhead}, entries)


def _costs(space: SearchSpace, table: LatencyTable, layer: object) -> list[float]:
    return [0.0 if k == ZERO else table.entries[k]["ms"] for k in space.layer_keys(layer)]


def _slow_nets(space: SearchSpace, table: LatencyTable, n: int, rng: np.random.Generator) -> list[Arch]:
    """Nets from the slow half of the space (the kind of sample a free fit extrapolates from)."""
    out = []
    for _ in range(n):
        ops = []
        for layer in space.layers:
            ms = _costs(space, table, layer)
            order = np.argsort(ms)[len(ms) // 2:]
            ops.append(layer.candidates[int(rng.choice(order))])
        out.append(Arch(space, ops))
    return out


@pytest.mark.parametrize("kind", ["basic", "stages"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_steep_overhead_cannot_drive_the_fast_corner_below_the_call_cost(kind, seed):
    rng = np.random.default_rng(seed)
    space = load_space("cifar")
    overhead = 0.01
    table = _table(space, rng, overhead)
    nets = _slow_nets(space, table, 30, rng)
    # whole nets run at 2.24x the table sum minus 8.4 ms: a free fit's intercept is -8.4 ms,
    # and it predicts the fastest net far below zero
    measured = [2.24 * predict_arch_ms(a, table) - 8.4 for a in nets]
    assert min(measured) > 0
    free = np.polyfit([predict_arch_ms(a, table) for a in nets], measured, 1)
    assert np.polyval(free, fastest_ms(space, table)) < 0
    corr = fit_correction(nets, measured, table, kind=kind)
    assert corr.intercept >= overhead and min(corr.coef) >= 0
    fitted = LatencyTable(table.meta, table.entries, corr)
    assert fastest_ms(space, fitted) > overhead
    # the order of the table is kept: the fastest net of the raw table is still the fastest
    fast = Arch(space, [l.candidates[int(np.argmin(_costs(space, table, l)))] for l in space.layers])
    slow = Arch(space, [l.candidates[int(np.argmax(_costs(space, table, l)))] for l in space.layers])
    preds = [predict_arch_ms(a, fitted) for a in nets]
    assert predict_arch_ms(fast, fitted) <= min(preds) <= max(preds) <= predict_arch_ms(slow, fitted)


def test_the_fit_still_recovers_a_positive_linear_overhead():
    rng = np.random.default_rng(3)
    space = load_space("fashion-mnist")
    table = _table(space, rng, 0.0)
    nets = [Arch(space, [layer.candidates[int(rng.integers(len(layer.candidates)))]
                         for layer in space.layers]) for _ in range(24)]
    measured = [1.3 * predict_arch_ms(a, table) + 0.04 * a.depth + 0.2 for a in nets]
    corr = fit_correction(nets, measured, table, kind="basic", ridge=1e-9)
    assert corr.coef == pytest.approx([1.3, 0.04], abs=1e-3)
    assert corr.intercept == pytest.approx(0.2, abs=1e-3)


@pytest.mark.parametrize("preset", ["fashion-mnist", "cifar", "imagenet-mobile", "fbnet-cifar100"])
def test_calibration_nets_span_the_fast_and_the_slow_corner(preset):
    space = load_space(preset)
    corners = corner_design(space)
    design = calibration_design(space, 24)
    assert len(design) == 24 and (design[: len(corners)] == corners).all()
    fastest, slowest = corners[0], corners[-1]
    for layer, i, j in zip(space.layers, fastest, slowest):
        assert i != j or len(layer.candidates) == 1
    if "zero" in space.layers[1].candidates:  # a shape-keeping layer: the fast corner skips it
        assert space.layers[1].candidates[fastest[1]] == "zero"

"""Measure latency as the field does: fixed threads, warm-up, many repeats, a low percentile
per round over interleaved rounds (the fastest round by default: ``Protocol.across``).

Backends are the runtimes of the registry (``directnas.runtimes``, ``--backend NAME``); each
turns an ``nn.Module`` and an input shape into a callable that runs one inference.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import random
import statistics
import time
from typing import Callable, Iterable

from torch import nn

from directnas.errors import UserError
from directnas import runtimes
from directnas.runtimes import ACROSS, CLOCKS, STATS, Protocol, Runner, RunnerFactory
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch, build_fixed
from directnas.space.ops import SKIP, ZERO, build_op, conv_bn
from directnas.space.space import SearchSpace, conv_out
from directnas.utils.seeding import keeps_rng
from directnas.utils.threads import torch_threads

log = logging.getLogger(__name__)


def time_runner(run: Runner, proto: Protocol) -> list[float]:
    """Per-call times in ms after ``warmup`` calls (wall clock, or the runner's own clock), with
    ``proto.threads`` intra-op torch threads (the caller's count is restored after)."""
    with torch_threads(proto.threads):
        for _ in range(proto.warmup):
            run()
        own_clock = getattr(run, "time_ms", None)
        if own_clock is not None:
            return [float(own_clock()) for _ in range(proto.repeats)]
        if proto.clock not in CLOCKS:
            raise UserError(f"unknown clock {proto.clock!r}: use one of {', '.join(CLOCKS)}")
        if proto.clock == "cpu" and proto.threads != 1:
            raise UserError("--clock cpu measures one thread's CPU time: use it with --threads 1")
        clock = time.thread_time if proto.clock == "cpu" else time.perf_counter
        out = []
        for _ in range(proto.repeats):
            t0 = clock()
            run()
            out.append((clock() - t0) * 1e3)
    return out


def summarize(times: list[float], stat: str = "median") -> dict[str, float]:
    """``ms``: the statistic ``stat`` of the times (see ``runtimes.STATS``); ``spread_ms``: IQR."""
    q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), 0, max(times)]
    if stat == "median":
        ms = statistics.median(times)
    elif stat == "min":
        ms = min(times)
    elif stat == "mean":
        ms = statistics.fmean(times)
    elif stat in ("p10", "p25"):
        ms = statistics.quantiles(times, n=100, method="inclusive")[int(stat[1:]) - 1] \
            if len(times) >= 2 else times[0]
    else:
        raise UserError(f"unknown statistic {stat!r}: use one of {', '.join(STATS)}")
    return {"ms": ms, "spread_ms": q[2] - q[0]}


@keeps_rng
def measure_module(module: nn.Module, shape: tuple[int, ...], *, backend: str = "torch-cpu",
                   proto: Protocol = Protocol()) -> dict[str, float]:
    """One module's latency in ``proto.rounds`` rounds combined as ``proto.across`` says (one
    round: the round's statistic), so that a lone net is timed by the same rule as a table."""
    rt = runtimes.get(backend)
    with runtimes.lowering(rt.name):
        runner = rt.runner(module, shape, proto)
        if proto.rounds <= 1:
            return summarize(time_runner(runner, proto), proto.stat)
        return measure_interleaved({"net": runner}, proto, rounds=proto.rounds)["net"]


# how a profile calibrates its table (part of the cache key: a new form re-profiles)
CALIBRATION_FORM = "corners+positive"


def device_meta(backend: str, proto: Protocol) -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"backend": backend, "device": cpu, "cpu_count": os.cpu_count(),
            "threads": proto.threads, "batch_size": proto.batch_size, "dtype": proto.dtype,
            "channels_last": proto.channels_last, "warmup": proto.warmup, "stat": proto.stat,
            "clock": proto.clock, "rounds": proto.rounds, "across": proto.across,
            "repeats": proto.repeats, **runtimes.get(backend).versions(),
            "calibration": CALIBRATION_FORM,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def space_modules(space: SearchSpace) -> Iterable[tuple[str, nn.Module, tuple[int, ...]]]:
    """(key, module, input shape at batch 1) for every fixed part and every candidate op."""
    stem, first, head = build_fixed(space)
    keys = space.fixed_keys()
    hw0 = space.input_size
    yield keys[0], stem, (1, space.input_channels, hw0, hw0)
    if space.first_channels:
        h = conv_out(hw0, space.stem_stride)
        yield keys[1], first, (1, space.stem_channels, h, h)
    yield keys[-1], head, (1, space.last_channels, space.last_hw, space.last_hw)
    seen: set[str] = set()
    for layer in space.layers:
        for op, key in zip(layer.candidates, space.layer_keys(layer)):
            if op == ZERO or key in seen:
                continue
            seen.add(key)
            yield key, build_op(op, layer.c_in, layer.c_out, layer.stride, residual=layer.residual,
                                activation=space.activation), \
                (1, layer.c_in, layer.hw_in, layer.hw_in)


REFERENCE = "reference"


def reference_arch(space: SearchSpace) -> Arch:
    """The drift reference timed in every round: each layer's first candidate that is neither
    ``zero`` nor ``skip`` (a net that computes, even where ``skip`` is listed first)."""
    return Arch(space, [next((c for c in l.candidates if c not in (ZERO, SKIP)),
                             l.candidates[0]) for l in space.layers])


def measure_interleaved(runners: dict[str, Runner], proto: Protocol, *, rounds: int = 1,
                        seed: int = 0,
                        progress: Callable[[Iterable], Iterable] = lambda it: it,
                        ) -> dict[str, dict[str, float]]:
    """Time every runner in ``rounds`` rounds, each round over all runners in a fresh shuffled
    order (warm-up + ``repeats`` each time), so that a machine's drift hits all alike.

    Per runner, with ``proto.across == "median"``: ``ms`` = median over rounds of the round's
    statistic (``proto.stat``), ``spread_ms`` = their range (with one round: the
    inter-quartile range of the repeats).
    When a runner is named ``REFERENCE`` (a fixed net), every round's figures are scaled by
    median(reference) / reference-in-that-round before the median, so a round the machine ran
    slow counts like the others; the reference's own relative round spread is the noise floor
    (``noise_floor``: its (max - min) / median over rounds).  With ``proto.across == "min"``
    (the default) a runner's ``ms`` is instead its fastest round, unscaled: on a host whose
    speed flips between two states within seconds (a round of one net can fall in either, the
    reference's in the other), the median mixes the states and a reference scaling cannot separate them."""
    if rounds < 1:
        raise UserError(f"rounds must be >= 1, got {rounds}")
    if proto.across not in ACROSS:
        raise UserError(f"unknown --across {proto.across!r}: use one of {', '.join(ACROSS)}")
    rng = random.Random(seed)
    keys = list(runners)
    per_round: dict[str, list[float]] = {k: [] for k in keys}
    last: dict[str, dict[str, float]] = {}
    with torch_threads(proto.threads):  # set once for all rounds, not per runner
        for r in progress(range(rounds)) if rounds > 1 else range(rounds):
            order = rng.sample(keys, len(keys))
            for key in order if rounds > 1 else progress(order):
                last[key] = summarize(time_runner(runners[key], proto), proto.stat)
                per_round[key].append(last[key]["ms"])
    if rounds == 1:
        return last
    scale = [1.0] * rounds
    out: dict[str, dict[str, float]] = {}
    if REFERENCE in per_round:
        ref = per_round[REFERENCE]
        mid = statistics.median(ref)
        scale = [mid / v if v > 0 else 1.0 for v in ref]
        out[NOISE] = {"ms": mid, "spread_ms": max(ref) - min(ref),
                      "noise_floor": (max(ref) - min(ref)) / mid if mid > 0 else math.nan}
    for k, v in per_round.items():
        if proto.across == "min":  # the machine's fast state; scaling by a reference timed in
            out[k] = {"ms": min(v), "spread_ms": max(v) - min(v)}  # the other state would bias it
            continue
        norm = [x * f for x, f in zip(v, scale)]
        out[k] = {"ms": statistics.median(norm), "spread_ms": max(norm) - min(norm)}
    return out


NOISE = "_noise"


def op_runners(space: SearchSpace, *, backend: str, proto: Protocol,
               skip: Iterable[str] = ()) -> dict[str, Runner]:
    """A runner (at ``proto.batch_size``) for every fixed part and candidate op not in ``skip``."""
    factory = runtimes.get(backend).runner
    skip = set(skip)
    return {key: factory(module, (proto.batch_size,) + tuple(shape[1:]), proto)
            for key, module, shape in space_modules(space) if key not in skip}


CALIBRATION_NETS = 24


@keeps_rng
def measure_space(space: SearchSpace, *, backend: str, proto: Protocol, rounds: int,
                  nets: dict[str, Arch], skip_ops: Iterable[str] | None = (), seed: int = 0,
                  progress: Callable[[Iterable], Iterable] = lambda it: it,
                  extra: dict[str, Runner] | None = None,
                  ) -> dict[str, dict[str, float]]:
    """One interleaved measurement (``measure_interleaved``) of the space's ops not in
    ``skip_ops`` (``None``: no ops), the whole nets ``nets``, the drift reference and a null op
    (the runtime's per-call cost), and the ready runners ``extra`` (e.g. an exported artifact).
    Keys: op keys, net names, ``extra``'s names, ``REFERENCE``, ``NULL``, ``NOISE``."""
    shape = (proto.batch_size, space.input_channels, space.input_size, space.input_size)
    items: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}
    if skip_ops is not None:
        skip = set(skip_ops)
        items.update({k: (m, (proto.batch_size,) + tuple(s[1:]))
                      for k, m, s in space_modules(space) if k not in skip})
    items.update({name: (a.build(), shape) for name, a in nets.items()})
    items[REFERENCE] = (reference_arch(space).build(), shape)
    items[NULL] = (nn.ReLU(), (proto.batch_size, 1, 1, 1))
    runners = {**runtimes.get(backend).make_runners(items, proto), **(extra or {})}
    return measure_interleaved(runners, proto, rounds=max(2, rounds), seed=seed,
                               progress=progress)


NULL = "_null"


def calibration_archs(space: SearchSpace, n: int = CALIBRATION_NETS, *, seed: int = 0
                      ) -> dict[str, Arch]:
    """``n`` whole nets: the space's corners (the fastest and the slowest net and two between,
    ``corner_design``) and nets that together cover every (layer, op) pair (the D-optimal
    balanced design of ``latency design``)."""
    from directnas.latency.fit import arch_from_op_indices
    from directnas.latency.fit_design import calibration_design

    if n <= 0:
        return {}
    idx = calibration_design(space, n, seed=seed)
    return {f"cal{i}": arch_from_op_indices(space, row) for i, row in enumerate(idx)}


@keeps_rng
def profile_space(space: SearchSpace, *, backend: str = "torch-cpu", proto: Protocol = Protocol(),
                  existing: LatencyTable | None = None,
                  progress: Callable[[Iterable], Iterable] = lambda it: it,
                  rounds: int | None = None, calibrate: int = CALIBRATION_NETS,
                  extra_nets: dict[str, Arch] | None = None, seed: int = 0,
                  measured_out: dict[str, dict[str, float]] | None = None) -> LatencyTable:
    """Measure every op of ``space`` not already in ``existing`` (a cache) and ``calibrate``
    whole nets (at most ``CALIBRATION_NETS``, covering every (layer, op) pair) in the same
    interleaved rounds, with a drift reference per round; the table gets a linear correction
    fitted on those nets (``latency.correction``), so it predicts whole nets in this runtime.

    The runtime's per-call cost (a null op) is measured and removed from every op entry but the
    stem's (a net pays it once).  ``extra_nets`` are timed in the same rounds and not fitted
    on; their figures land in ``measured_out`` (e.g. ``latency validate``'s held-out nets)."""
    from directnas.latency.calibrate import fit_best_correction

    rounds = proto.rounds if rounds is None else rounds
    table = LatencyTable(device_meta(backend, proto), dict(existing.entries) if existing else {})
    cal = calibration_archs(space, min(calibrate, CALIBRATION_NETS), seed=seed)
    nets = {**cal, **(extra_nets or {})}
    measured = measure_space(space, backend=backend, proto=proto, rounds=rounds, nets=nets,
                             skip_ops=table.entries, seed=seed, progress=progress)
    null_ms = measured[NULL]["ms"]
    stem = space.fixed_keys()[0]
    for key, _, _ in space_modules(space):
        if key in measured:
            m = dict(measured[key])
            m["raw_ms"] = m["ms"]
            if key != stem:
                m["ms"] = max(m["ms"] - null_ms, 0.02 * m["ms"])
            table.entries[key] = m
    noise = measured.get(NOISE, {})
    table.meta.update({"rounds": max(2, rounds), "call_overhead_ms": null_ms,
                       "reference_ms": noise.get("ms"), "noise_floor": noise.get("noise_floor"),
                       "reference_arch": reference_arch(space).ops})
    if cal:
        corr = fit_best_correction([cal[k] for k in cal], [measured[k]["ms"] for k in cal], table)
        corr.fit.update({"backend": backend, "nets": len(cal),
                         "measured": [{"ops": list(cal[k].ops), "ms": measured[k]["ms"]} for k in cal]})
        table = LatencyTable(table.meta, table.entries, corr)
    if measured_out is not None:
        measured_out.update(measured)
    return table


def measure_net(net: nn.Module, input_shape: tuple[int, int, int], *, backend: str = "torch-cpu",
                proto: Protocol = Protocol()) -> dict[str, float]:
    """End-to-end latency of a whole network, same protocol as the table."""
    return measure_module(net, (proto.batch_size,) + tuple(input_shape), backend=backend, proto=proto)


__all__ = ["Protocol", "Runner", "RunnerFactory", "measure_interleaved", "measure_module",
           "measure_net", "op_runners", "profile_space", "conv_bn"]

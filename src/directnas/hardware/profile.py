"""Measure latency as the field does: fixed threads, warm-up, many repeats, median.

Backends are a registry (``BACKENDS``, in ``hardware.backends``, re-exported here); each turns an
``nn.Module`` and an input shape into a callable that runs one inference: ``torch-cpu``,
``onnxruntime-cpu`` and ``cuda``.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import statistics
import time
from typing import Callable, Iterable

from torch import nn

from directnas.errors import UserError
from directnas.hardware.backends import (BACKENDS, CLOCKS, STATS, Protocol, Runner,
                                         RunnerFactory, backend_versions, get_backend)
from directnas.hardware.lut import LatencyTable
from directnas.space.arch import build_fixed
from directnas.space.ops import ZERO, build_op, conv_bn
from directnas.space.space import SearchSpace, conv_out

log = logging.getLogger(__name__)


def time_runner(run: Runner, proto: Protocol) -> list[float]:
    """Per-call times in ms after ``warmup`` calls (wall clock, or the runner's own clock)."""
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
    """``ms``: the statistic ``stat`` of the times (see ``backends.STATS``); ``spread_ms``: IQR."""
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


def measure_module(module: nn.Module, shape: tuple[int, ...], *, backend: str = "torch-cpu",
                   proto: Protocol = Protocol()) -> dict[str, float]:
    return summarize(time_runner(get_backend(backend)(module, shape, proto), proto), proto.stat)


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
            "clock": proto.clock,
            "repeats": proto.repeats, **backend_versions(backend),
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
            yield key, build_op(op, layer.c_in, layer.c_out, layer.stride, residual=layer.residual), \
                (1, layer.c_in, layer.hw_in, layer.hw_in)


def measure_interleaved(runners: dict[str, Runner], proto: Protocol, *, rounds: int = 1,
                        seed: int = 0,
                        progress: Callable[[Iterable], Iterable] = lambda it: it,
                        ) -> dict[str, dict[str, float]]:
    """Time every runner in ``rounds`` rounds, each round over all runners in a fresh shuffled
    order (warm-up + ``repeats`` each time), so that a machine's drift hits all alike.

    Per runner: ``ms`` = median of the per-round medians, ``spread_ms`` = their range (with one
    round: the inter-quartile range of the repeats)."""
    if rounds < 1:
        raise UserError(f"rounds must be >= 1, got {rounds}")
    rng = random.Random(seed)
    keys = list(runners)
    per_round: dict[str, list[float]] = {k: [] for k in keys}
    last: dict[str, dict[str, float]] = {}
    steps = [(r, k) for r in range(rounds) for k in rng.sample(keys, len(keys))]
    for _, key in progress(steps):
        last[key] = summarize(time_runner(runners[key], proto), proto.stat)
        per_round[key].append(last[key]["ms"])
    if rounds == 1:
        return last
    return {k: {"ms": statistics.median(v), "spread_ms": max(v) - min(v)}
            for k, v in per_round.items()}


def op_runners(space: SearchSpace, *, backend: str, proto: Protocol,
               skip: Iterable[str] = ()) -> dict[str, Runner]:
    """A runner (at ``proto.batch_size``) for every fixed part and candidate op not in ``skip``."""
    factory = get_backend(backend)
    skip = set(skip)
    return {key: factory(module, (proto.batch_size,) + tuple(shape[1:]), proto)
            for key, module, shape in space_modules(space) if key not in skip}


def profile_space(space: SearchSpace, *, backend: str = "torch-cpu", proto: Protocol = Protocol(),
                  existing: LatencyTable | None = None,
                  progress: Callable[[Iterable], Iterable] = lambda it: it,
                  rounds: int = 1) -> LatencyTable:
    """Measure every op of ``space`` not already in ``existing`` (a cache); with ``rounds`` > 1
    the ops are measured interleaved (``measure_interleaved``)."""
    table = LatencyTable(device_meta(backend, proto), dict(existing.entries) if existing else {})
    if rounds == 1:  # one op at a time: only one op's runner (and ONNX session) alive
        factory = get_backend(backend)
        todo = [(k, m, s) for k, m, s in space_modules(space) if k not in table.entries]
        for key, module, shape in progress(todo):
            shape = (proto.batch_size,) + tuple(shape[1:])
            runner = factory(module, shape, proto)
            table.entries[key] = summarize(time_runner(runner, proto), proto.stat)
        return table
    runners = op_runners(space, backend=backend, proto=proto, skip=table.entries)
    table.entries.update(measure_interleaved(runners, proto, rounds=rounds, progress=progress))
    table.meta["rounds"] = rounds
    return table


def measure_net(net: nn.Module, input_shape: tuple[int, int, int], *, backend: str = "torch-cpu",
                proto: Protocol = Protocol()) -> dict[str, float]:
    """End-to-end latency of a whole network, same protocol as the table."""
    return measure_module(net, (proto.batch_size,) + tuple(input_shape), backend=backend, proto=proto)


__all__ = ["Protocol", "BACKENDS", "Runner", "RunnerFactory", "get_backend", "measure_interleaved",
           "measure_module", "measure_net", "op_runners", "profile_space", "conv_bn"]

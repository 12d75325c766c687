"""Measure latency as the field does: fixed threads, warm-up, many repeats, median.

Backends are a registry (``BACKENDS``); each turns an ``nn.Module`` and an input shape into a
callable that runs one inference.  ``torch-cpu`` is eager PyTorch on the CPU.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from directnas.errors import UserError
from directnas.hardware.lut import LatencyTable
from directnas.space.arch import build_fixed
from directnas.space.ops import ZERO, build_op, conv_bn
from directnas.space.space import SearchSpace, conv_out

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Protocol:
    batch_size: int = 1
    threads: int = 2
    warmup: int = 10
    repeats: int = 50
    dtype: str = "float32"
    channels_last: bool = False


Runner = Callable[[], object]
RunnerFactory = Callable[[nn.Module, tuple[int, ...], Protocol], Runner]


def _torch_cpu(module: nn.Module, shape: tuple[int, ...], proto: Protocol) -> Runner:
    torch.set_num_threads(proto.threads)
    module = module.eval()
    x = torch.randn(*shape)
    if proto.channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run() -> object:
        with torch.inference_mode():
            return module(x)

    return run


BACKENDS: dict[str, RunnerFactory] = {"torch-cpu": _torch_cpu}


def get_backend(name: str) -> RunnerFactory:
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}: use one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def time_runner(run: Runner, proto: Protocol) -> list[float]:
    """Per-call wall times in ms after ``warmup`` calls."""
    for _ in range(proto.warmup):
        run()
    out = []
    for _ in range(proto.repeats):
        t0 = time.perf_counter()
        run()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def summarize(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=4) if len(times) >= 4 else [min(times), 0, max(times)]
    return {"ms": statistics.median(times), "spread_ms": q[2] - q[0]}


def measure_module(module: nn.Module, shape: tuple[int, ...], *, backend: str = "torch-cpu",
                   proto: Protocol = Protocol()) -> dict[str, float]:
    return summarize(time_runner(get_backend(backend)(module, shape, proto), proto))


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
            "channels_last": proto.channels_last, "warmup": proto.warmup,
            "repeats": proto.repeats, "torch": torch.__version__,
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


def profile_space(space: SearchSpace, *, backend: str = "torch-cpu", proto: Protocol = Protocol(),
                  existing: LatencyTable | None = None,
                  progress: Callable[[Iterable], Iterable] = lambda it: it) -> LatencyTable:
    """Measure every op of ``space`` not already in ``existing`` (a cache)."""
    table = LatencyTable(device_meta(backend, proto), dict(existing.entries) if existing else {})
    factory = get_backend(backend)
    todo = [(k, m, s) for k, m, s in space_modules(space) if k not in table.entries]
    for key, module, shape in progress(todo):
        shape = (proto.batch_size,) + tuple(shape[1:])
        table.entries[key] = summarize(time_runner(factory(module, shape, proto), proto))
    return table


def measure_net(net: nn.Module, input_shape: tuple[int, int, int], *, backend: str = "torch-cpu",
                proto: Protocol = Protocol()) -> dict[str, float]:
    """End-to-end latency of a whole network, same protocol as the table."""
    return measure_module(net, (proto.batch_size,) + tuple(input_shape), backend=backend, proto=proto)


__all__ = ["Protocol", "BACKENDS", "measure_module", "measure_net", "profile_space", "conv_bn"]

"""Predict a network's latency from a table: fixed layers + the sum of its ops' entries."""

from __future__ import annotations

from directnas.hardware.lut import LatencyTable
from directnas.space.arch import Arch
from directnas.space.space import op_key


def predict_arch_ms(arch: Arch, table: LatencyTable) -> float:
    space = arch.space
    table.check_covers(space)
    total = sum(table.ms(k) for k in space.fixed_keys())
    for layer, op in zip(space.layers, arch.ops):
        total += table.ms(op_key(op, layer.c_in, layer.c_out, layer.stride, layer.hw_in))
    return total

"""Multiply-accumulates of one op at one searchable layer, from the layer's shapes alone.

Every searchable layer of a space has fixed input and output shapes, so a net's MACs are the
fixed part (stem, first block, head) plus one term per layer: additive like the latency table,
which lets ``nas.derive`` find the net with the most MACs inside a latency window exactly.
"""

from __future__ import annotations

from directnas.space.ops import SKIP, parse_op
from directnas.space.space import LayerSpec


def op_mmacs(layer: LayerSpec, op: str) -> float:
    """Millions of MACs of ``op`` at ``layer`` (batch 1; convs only, as ``count_macs``)."""
    hw, ho, ci, co = layer.hw_in, layer.hw_out, layer.c_in, layer.c_out
    if op == SKIP:  # an identity, or a 1x1 projection where the shape changes
        return 0.0 if ci == co and layer.stride == 1 else ho * ho * ci * co / 1e6
    spec = parse_op(op)
    if spec is None:  # zero
        return 0.0
    mid = ci * spec.expand
    macs = hw * hw * ci * mid / spec.groups if spec.expand != 1 else 0.0
    macs += ho * ho * mid * spec.kernel ** 2 + ho * ho * mid * co / spec.groups
    return macs / 1e6


def layer_mmacs(layers: tuple[LayerSpec, ...] | list[LayerSpec]) -> list[list[float]]:
    """``op_mmacs`` of every candidate of every layer, in the layers' candidate order."""
    return [[op_mmacs(l, op) for op in l.candidates] for l in layers]

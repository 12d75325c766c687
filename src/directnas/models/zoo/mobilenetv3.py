"""MobileNetV3-small and -large (Howard et al., 2019) *in outline*, built from directnas's own ops.

The nets keep the paper's bneck tables (kernel, expansion size, output channels, stride) but are
made of the same inverted-residual blocks as every space here (``k<kernel>_e<expand>``: 1x1
expand -> depthwise -> 1x1 project, shortcut where the shape is kept), so a searched net is
compared with the hand-designed layout, not with other ops.  What differs from the paper:

* **no squeeze-and-excitation and no h-swish**: the spaces have neither, so every block and the
  stem use the space's activation (ReLU6 by default, ``activation``);
* **integer expansions**: a block's expansion is its expansion size over its input channels,
  rounded to the nearest integer (halves up): MobileNetV3-large's 200/80 and 184/80 give ``e3``
  and ``e2``, MobileNetV3-small's 72/16 and 88/24 give ``e5`` and ``e4``;
* **the head** is directnas's: 1x1 conv to the paper's last conv width (960 / 576) -> pool ->
  dropout (0.1, as the presets and ``mobilenetv2``) -> linear; the paper's extra 1280 / 1024
  fully connected layer after the pool is left out.

Each is a ``SearchSpace`` whose stages group the consecutive blocks of one width (a stage's
candidates are the ops its blocks use) and an ``Arch`` choosing each block's op, so it is built by
``Arch.build()`` like a searched net.  Small inputs (< 64 px, e.g. 28x28) get the same
adaptation as ``mobilenetv2``: the stem keeps the resolution (stride 1) and the last stride-2
stage runs at stride 1, so the overall stride is 8 instead of 32 (28 -> 4x4 at the end, as the
fashion-mnist preset).  Channels are scaled by ``width`` and rounded to a multiple of 8.
"""

from __future__ import annotations

from functools import partial

from typing import Any


from directnas.models.registry import arch_builder, register
from directnas.models.zoo.mobilenetv2 import HEAD_DROPOUT, SMALL_INPUT, make_divisible
from directnas.space.arch import Arch
from directnas.space.ops import DEFAULT_ACTIVATION
from directnas.space.space import SearchSpace

# (kernel, expansion size, output channels, stride) of each bneck, the first one the fixed
# first block; stem channels; last conv width (the head)
BNECKS: dict[str, dict[str, Any]] = {
    "large": {"stem": 16, "head": 960, "blocks": (
        (3, 16, 16, 1),
        (3, 64, 24, 2), (3, 72, 24, 1),
        (5, 72, 40, 2), (5, 120, 40, 1), (5, 120, 40, 1),
        (3, 240, 80, 2), (3, 200, 80, 1), (3, 184, 80, 1), (3, 184, 80, 1),
        (3, 480, 112, 1), (3, 672, 112, 1),
        (5, 672, 160, 2), (5, 960, 160, 1), (5, 960, 160, 1))},
    "small": {"stem": 16, "head": 576, "blocks": (
        (3, 16, 16, 2),
        (3, 72, 24, 2), (3, 88, 24, 1),
        (5, 96, 40, 2), (5, 240, 40, 1), (5, 240, 40, 1),
        (5, 120, 48, 1), (5, 144, 48, 1),
        (5, 288, 96, 2), (5, 576, 96, 1), (5, 576, 96, 1))},
}


def model_name(variant: str) -> str:
    """``mobilenetv3-small``, ``mobilenetv3-large``."""
    return f"mobilenetv3-{variant}"


def _expand(size: int, c_in: int) -> int:
    return max(1, int(size / c_in + 0.5))


def _stages(blocks: tuple, c_in: int, width: float) -> tuple[list[dict[str, Any]], list[str]]:
    """The bnecks after the first as stages (one per run of equal width) and each block's op."""
    stages: list[dict[str, Any]] = []
    ops: list[str] = []
    for k, size, c, s in blocks:
        c = make_divisible(c * width)
        op = f"k{k}_e{_expand(make_divisible(size * width), c_in)}"
        if stages and stages[-1]["width"] == c and s == 1:
            stages[-1]["depth"] += 1
            if op not in stages[-1]["candidates"]:
                stages[-1]["candidates"].append(op)
        else:
            stages.append({"width": c, "depth": 1, "stride": s, "candidates": [op]})
        ops.append(op)
        c_in = c
    return stages, ops


def mobilenetv3_arch(variant: str, width: float = 1.0, *,
                     input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                     activation: str = DEFAULT_ACTIVATION) -> Arch:
    """MobileNetV3-``variant`` (``small`` | ``large``) at width multiplier ``width``, as the one
    architecture of its own space (see the module)."""
    spec = BNECKS[variant]
    c, h, _ = input_shape
    small = h < SMALL_INPUT
    (k0, size0, c0, s0), rest = spec["blocks"][0], spec["blocks"][1:]
    stem = make_divisible(spec["stem"] * width)
    first = make_divisible(c0 * width)
    stages, ops = _stages(rest, first, width)
    if small:  # the last stride-2 stage keeps the resolution: overall stride 8
        next(st for st in reversed(stages) if st["stride"] == 2)["stride"] = 1
    d: dict[str, Any] = {
        "schema_version": 1,
        "name": model_name(variant) + ("" if width == 1.0 else f"-{width:g}"),
        "input": {"size": h, "channels": c},
        "num_classes": num_classes,
        "stem": {"channels": stem, "kernel": 3, "stride": 1 if small else 2},
        "first_block": {"channels": first, "kernel": k0, "expand": _expand(size0, spec["stem"]),
                        "stride": s0},
        "stages": stages,
        "head": {"channels": make_divisible(spec["head"] * width), "dropout": HEAD_DROPOUT},
        "candidates": sorted({op for st in stages for op in st["candidates"]}),
        "allow_zero": False,
    }
    if activation != DEFAULT_ACTIVATION:
        d["activation"] = activation
    arch = Arch(SearchSpace.from_dict(d), ops)
    arch.meta = {"model": model_name(variant), "width_multiplier": width}
    return arch


for _v in BNECKS:
    register(model_name(_v))(arch_builder(partial(mobilenetv3_arch, _v)))

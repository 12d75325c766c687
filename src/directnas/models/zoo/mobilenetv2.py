"""MobileNetV2 (Sandler et al., 2018) built from directnas's own ops, as a SearchSpace + Arch.

Each width is a one-candidate space (every layer ``k3_e6``, no ``zero``) and its only Arch, so the
same latency-table machinery prices it and ``directnas train --model mobilenetv2-0.5`` writes the
same outputs as a searched net (``predicted_latency_ms`` included).

The paper's rows ``(t, c, n, s)`` (expansion, channels, repeats, first stride)::

    stem 32 s2 | (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1) | 1280

Small inputs (< 64 px, e.g. Fashion-MNIST 28x28) get the fashion-mnist preset's adaptation: the
stem keeps the resolution (stride 1) and the first block ``(1,16,1)`` halves it (stride 2); the
24-row then runs at stride 1 and the 160-row at stride 1, so the maps are 28 -> 14 -> 14 -> 7 -> 4
-> 4 -> 4 -> 4, a final 4x4 like the preset's (an overall stride of 8 instead of 32).  Large
inputs keep the paper's strides.  Channels are scaled by the width multiplier and rounded to a
multiple of 8 (``make_divisible``, as torchvision); the head is 1x1 conv to ``1280 * max(1, w)``
-> pool -> dropout -> linear, with the preset's dropout (0.1) so only the architecture differs.
The activation is MobileNetV2's ReLU6 unless ``activation`` names another of the space's
(``space.ops.ACTIVATIONS``), so a reference net can use the activation of the space it is
compared with.
"""

from __future__ import annotations

from functools import partial

from typing import Any


from directnas.models.registry import arch_builder, register
from directnas.space.arch import Arch, uniform_arch
from directnas.space.ops import DEFAULT_ACTIVATION
from directnas.space.space import SearchSpace

OP = "k3_e6"
WIDTHS = ("0.35", "0.5", "0.75", "1.0", "1.4")
STEM, HEAD, HEAD_DROPOUT = 32, 1280, 0.1
FIRST = (1, 16, 1, 1)  # (t, c, n, s): the fixed first block
ROWS = ((6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
SMALL_INPUT = 64  # inputs below this many pixels get the small-input strides
SMALL_STRIDES = {"stem": 1, "first": 2, "rows": (1, 2, 2, 1, 1, 1)}


def model_name(width: float) -> str:
    """``mobilenetv2-0.35`` ... ``mobilenetv2-1.0`` ... ``mobilenetv2-1.4``."""
    w = f"{width:g}"
    return f"mobilenetv2-{w if '.' in w else w + '.0'}"


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor``, never more than 10 % below it (torchvision)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def mobilenetv2_space(width: float, *, input_shape: tuple[int, int, int] = (1, 28, 28),
                      num_classes: int = 10, activation: str = DEFAULT_ACTIVATION) -> SearchSpace:
    """MobileNetV2 at width multiplier ``width`` as a one-candidate search space."""
    c, h, _ = input_shape
    small = h < SMALL_INPUT
    row_strides = SMALL_STRIDES["rows"] if small else tuple(r[3] for r in ROWS)
    d: dict[str, Any] = {
        "schema_version": 1,
        "name": model_name(width),
        "input": {"size": h, "channels": c},
        "num_classes": num_classes,
        "stem": {"channels": make_divisible(STEM * width), "kernel": 3,
                 "stride": SMALL_STRIDES["stem"] if small else 2},
        "first_block": {"channels": make_divisible(FIRST[1] * width), "kernel": 3,
                        "expand": FIRST[0], "stride": SMALL_STRIDES["first"] if small else FIRST[3]},
        "stages": [{"width": make_divisible(ch * width), "depth": n, "stride": s}
                   for (_t, ch, n, _s), s in zip(ROWS, row_strides)],
        "head": {"channels": make_divisible(HEAD * max(1.0, width)), "dropout": HEAD_DROPOUT},
        "candidates": [OP],
        "allow_zero": False,
    }
    if activation != DEFAULT_ACTIVATION:  # the default writes no key: fingerprints unchanged
        d["activation"] = activation
    return SearchSpace.from_dict(d)


def mobilenetv2_arch(width: float, *, input_shape: tuple[int, int, int] = (1, 28, 28),
                     num_classes: int = 10, activation: str = DEFAULT_ACTIVATION) -> Arch:
    """The only architecture of ``mobilenetv2_space(width)``: every layer ``k3_e6``."""
    arch = uniform_arch(mobilenetv2_space(width, input_shape=input_shape, num_classes=num_classes,
                                          activation=activation), OP)
    arch.meta = {"model": model_name(width), "width_multiplier": width}
    return arch


for _w in WIDTHS:
    register(model_name(float(_w)))(arch_builder(partial(mobilenetv2_arch, float(_w))))

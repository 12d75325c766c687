"""A search space fitted to an image size: the rule behind ``photos-<size>`` spaces.

Input size.  ``fitted_input_size(side)``: the images' median shorter side rounded to a multiple
of 16 (of 8 below 64 px), at least 16, capped at ``MAX_INPUT_SIZE`` (64 px by default: the budget
of a CPU with a few cores.  Every stage of a run costs about the square of the side: on the
sign-language photos MobileNetV3-small trained 360 steps in 51 s at 64 px and 127 s at 96 px,
for 95.38 against 95.62 % test accuracy, one image of 411; a run at 96 px took longer than an
hour on 2 cores.  ``--max-input-size`` raises the cap on a faster machine or a GPU).

Layout.  The template is MobileNetV2 as ProxylessNAS searches it (the ``imagenet-mobile``
preset): stem 32 channels, a fixed first block of 16, then four groups of stages, each group
opening with a stride-2 stage::

    G1: 24 x 4          G2: 40 x 4          G3: 80 x 4, 96 x 4          G4: 192 x 4, 320 x 1

1. G1 always runs (its stride halves the map); G2, G3 and G4 follow while their stride leaves a
   map of at least ``MIN_LAST_HW`` (3) pixels.  A group whose stride would go below is dropped
   with the groups after it.
2. The stem halves the input unless that would leave fewer than three groups (images of 32 px
   and less keep their resolution in the stem, as the ``cifar`` and ``fashion-mnist`` presets
   and the small-input MobileNetV2 do); the first block halves it too when the last map would
   otherwise be larger than ``MAX_LAST_HW`` (7) pixels (above 224 px).
   So depth and width grow with the resolution: 8 searchable layers at 16 px, 16 (last width
   96) from 24 to 64 px, 21 (last width 320) from 72 px, and the last map is 3-7 px at every
   size from 24 to 448 px.
3. The head is 1x1 conv to 4x the last width, at least 512 and at most 1280 channels (1280 after
   G4 as in MobileNetV2, 512 after G3 as in ``fashion-mnist``); dropout 0.1.
4. Candidates: k3/k5/k7 x e3/e6 and ``zero`` where a layer keeps its shape (as ``cifar`` and
   ``imagenet-mobile``).

At 224 px the rule gives the ``imagenet-mobile`` preset's layout; at 28 px the ``fashion-mnist``
preset's resolutions (28 -> 14 -> 7 -> 4).  The ``photos-64``, ``photos-96``, ``photos-128`` and
``photos-160`` presets are the rule at those sizes.
"""

from __future__ import annotations

import math
from typing import Any

from directnas.space.ops import ZERO
from directnas.space.space import SearchSpace, conv_out

MAX_INPUT_SIZE = 64  # the default cap of a fitted input size (a CPU budget; see above)
MIN_INPUT_SIZE = 16
MIN_LAST_HW = 3  # a group's stride is kept only if it leaves at least this many pixels
MAX_LAST_HW = 7  # the first block halves the map when the last one would be larger
GROUPS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((24, 4),), ((40, 4),), ((80, 4), (96, 4)), ((192, 4), (320, 1)))
STEM_CHANNELS, FIRST_CHANNELS, DROPOUT = 32, 16, 0.1
CANDIDATES = ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6")


def fitted_input_size(side: float, *, cap: int | None = MAX_INPUT_SIZE) -> int:
    """The input size for images whose median shorter side is ``side`` px: rounded to a
    multiple of 16 (8 below 64 px), at least ``MIN_INPUT_SIZE``, at most ``cap``."""
    step = 16 if side >= 64 else 8
    size = max(MIN_INPUT_SIZE, step * math.floor(side / step + 0.5))
    return min(size, cap) if cap else size


def fitted_space(size: int, *, channels: int = 3, num_classes: int = 10,
                 name: str | None = None) -> SearchSpace:
    """The space of the rule above at ``size`` x ``size`` (named ``photos-<size>``)."""
    return SearchSpace.from_dict(fitted_space_dict(size, channels=channels,
                                                   num_classes=num_classes, name=name))


def fitted_space_dict(size: int, *, channels: int = 3, num_classes: int = 10,
                      name: str | None = None) -> dict[str, Any]:
    """``fitted_space`` as the YAML mapping of a space."""
    stem_stride = 2 if _groups(conv_out(size, 2))[0] >= 3 else 1
    hw = conv_out(size, stem_stride)
    first_stride = 2 if _groups(hw)[1] > MAX_LAST_HW else 1
    n_groups, _ = _groups(conv_out(hw, first_stride))
    stages = [{"width": w, "depth": d, "stride": 2 if j == 0 else 1}
              for group in GROUPS[:n_groups] for j, (w, d) in enumerate(group)]
    head = min(1280, max(512, 4 * stages[-1]["width"]))
    return {
        "schema_version": 1, "name": name or f"photos-{size}",
        "input": {"size": size, "channels": channels}, "num_classes": num_classes,
        "stem": {"channels": STEM_CHANNELS, "kernel": 3, "stride": stem_stride},
        "first_block": {"channels": FIRST_CHANNELS, "kernel": 3, "expand": 1,
                        "stride": first_stride},
        "stages": stages, "head": {"channels": head, "dropout": DROPOUT},
        "candidates": list(CANDIDATES), "allow_zero": True,
    }


def _groups(hw: int) -> tuple[int, int]:
    """(how many groups run on a ``hw``-pixel map, the last map they leave)."""
    n, hw = 1, conv_out(hw, 2)
    while n < len(GROUPS) and conv_out(hw, 2) >= MIN_LAST_HW:
        n, hw = n + 1, conv_out(hw, 2)
    return n, hw


def space_line(space: SearchSpace) -> str:
    """The space in one line: input, strides, stages, last map, head, searchable layers."""
    stages = " ".join(f"{s['width']}x{s['depth']}" + (f"/{s['stride']}" if s.get("stride", 1) > 1
                                                      else "") for s in space.stages)
    first = f"first {space.first_channels}" + (f"/{space.first_stride}" if space.first_stride > 1
                                               else "") + ", " if space.first_channels else ""
    ops = sorted({op for layer in space.layers for op in layer.candidates} - {ZERO})
    zero = " + zero" if any(ZERO in layer.candidates for layer in space.layers) else ""
    return (f"{space.name}: {space.input_size}x{space.input_size}x{space.input_channels}, stem "
            f"{space.stem_channels}/{space.stem_stride}, {first}stages {stages} -> "
            f"{space.last_hw}x{space.last_hw}, head {space.head_channels}; {len(space.layers)} "
            f"searchable layers of {len(ops)} ops{zero}")

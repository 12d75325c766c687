"""Int8 artifacts: a float32 net statically quantized for its runtime, by the int8 writer of the
runtime of its format (``Runtime.int8``; today pte, onnx and openvino, see their modules in
``runtimes``).

All take the net as deployed (``models.classifier.Classifier``: float32 pixels in [0, 1],
normalisation folded in) and calibrate its activation ranges on ``calib`` (N, C, H, W) images in
[0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from directnas import runtimes
from directnas.errors import UserError
from directnas.runtimes.base import Int8


def quantizer(fmt: str) -> Int8:
    """The int8 writer of format ``fmt``; a one-line error naming the int8 formats otherwise."""
    if fmt not in runtimes.formats() or runtimes.by_format(fmt).int8 is None:
        raise UserError(f"unknown int8 format {fmt!r}: use {', '.join(runtimes.int8_formats())}")
    q = runtimes.by_format(fmt).int8
    assert q is not None
    return q


def parse_int8_formats(text: str) -> list[str]:
    known = runtimes.int8_formats()
    fmts = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in known]
    if bad or not fmts:
        raise UserError(f"unknown int8 format {', '.join(bad) or text!r}: use a comma list of "
                        f"{', '.join(known)}")
    return list(dict.fromkeys(fmts))


def installed(fmt: str) -> bool:
    """Whether the runtime (and quantizer) of ``fmt`` can be imported."""
    return quantizer(fmt).installed()


def runtime_name(fmt: str) -> str:
    """What to install for the int8 artifacts of ``fmt``."""
    return quantizer(fmt).label


def write_int8(fmt: str, net: nn.Module, shape: tuple[int, ...], calib: torch.Tensor,
               path: Path, layout: str | None = None) -> Path:
    """Write ``net`` as an int8 artifact of ``fmt`` at ``path`` (its suffix set by the format),
    calibrated on ``calib``; ``layout``: one of the quantizer's layouts (None: its first)."""
    path = Path(path).with_suffix(runtimes.by_format(fmt).suffix)
    quantizer(fmt).write(net, shape, calib, path, layout)
    return path


def describe(fmt: str, layout: str | None = None) -> dict[str, Any]:
    """The quantizer's record of an int8 artifact of ``fmt``."""
    return quantizer(fmt).describe(layout)


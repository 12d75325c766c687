"""``openvino-cpu``: ``openvino.convert_model`` -> ``compile_model("CPU")`` with the latency
hint, ``threads`` inference threads and float32 precision (extra ``[openvino]``).  Ships
``.xml`` + ``.bin`` (fixed batch); int8 by NNCF's post-training ``nncf.quantize`` (the
performance preset: symmetric int8, per-channel weights), run by OpenVINO's CPU plugin (VNNI /
AMX int8 kernels where the CPU has them)."""

from __future__ import annotations

import logging
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from directnas.errors import UserError
from directnas.runtimes.base import (Int8, Protocol, Runner, Runtime, Shape, missing_module,
                                     register)
from directnas.runtimes.common import (float32_only, frozen_copy, need, version_of,
                                       versions_with)

EXTRA = "openvino"
USAGE = """import numpy as np, openvino as ov
model = ov.compile_model("{name}", "CPU", {{"INFERENCE_PRECISION_HINT": "f32"}})
x = np.random.rand({shape}).astype(np.float32)  # pixel values in [0, 1]
logits = model(x)[0]
print(logits.argmax(1))"""


def to_openvino(net: nn.Module, shape: Shape) -> Any:
    """An ``openvino.Model`` (save it with ``save_openvino``)."""
    ov = need("openvino", EXTRA, "the openvino format")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ov.convert_model(frozen_copy(net), example_input=torch.zeros(*shape))


def ov_compile(model: Any, threads: int) -> Any:
    """The model (or the .xml at a path) compiled for the CPU: latency hint, ``threads``
    threads, one stream, float32 as exported."""
    ov = need("openvino", EXTRA, "the openvino format")
    core = ov.Core()
    if isinstance(model, (str, Path)):
        model = core.read_model(str(model))
    return core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": int(threads),
                                             "PERFORMANCE_HINT": "LATENCY",
                                             "NUM_STREAMS": 1,
                                             # float32 as exported (CPUs with bf16 units
                                             # otherwise run bf16 and lose parity)
                                             "INFERENCE_PRECISION_HINT": "f32"})


def save_openvino(model: Any, path: Path) -> Path:
    """Save an ``openvino.Model`` as ``path`` (.xml) + its .bin, atomically (weights as they
    are)."""
    import openvino as ov

    path = path.with_suffix(".xml")
    tmp = path.with_name(f".{path.stem}.tmp.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)
    return path


def openvino_runner(module: nn.Module, shape: Shape, proto: Protocol) -> Runner:
    """``module`` converted and compiled at ``shape``, on a fixed random input."""
    float32_only("openvino-cpu", proto)
    req = ov_compile(to_openvino(module, shape), proto.threads).create_infer_request()
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)

    def run() -> object:
        return req.infer({0: x})

    return run


def write_openvino(net: nn.Module, shape: Shape, path: Path) -> None:
    save_openvino(to_openvino(net, shape), path)


def load_openvino(path: Path, x: torch.Tensor, threads: int) -> Runner:
    req = ov_compile(Path(path), threads).create_infer_request()
    xn = x.numpy()
    return lambda: req.infer({0: xn})


def openvino_size(path: Path) -> int:
    """Bytes on disk of the .xml at ``path`` and its .bin."""
    path = Path(path)
    return path.stat().st_size + path.with_suffix(".bin").stat().st_size


def openvino_version() -> str:
    return f"openvino {version_of('openvino')}"


def openvino_int8(net: nn.Module, shape: Shape, calib: np.ndarray) -> Any:
    """``net`` as an int8 ``openvino.Model`` (input ``shape``), NNCF post-training quantization
    calibrated on ``calib`` (N, C, H, W) float32 images in [0, 1], one batch per sample."""
    try:
        import nncf
    except ImportError:
        raise UserError('int8 openvino needs nncf: pip install "directnas[openvino]"') from None
    model = to_openvino(net, shape)
    b = shape[0]
    samples = [np.ascontiguousarray(calib[i:i + b], dtype=np.float32)
               for i in range(0, len(calib) - b + 1, b)]
    logging.getLogger("nncf").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                             preset=nncf.QuantizationPreset.PERFORMANCE)


def write_openvino_int8(net: nn.Module, shape: Shape, calib: torch.Tensor, path: Path,
                        layout: str | None) -> None:
    save_openvino(openvino_int8(net, shape, calib.numpy()), path)


def describe_openvino_int8(layout: str | None) -> dict[str, Any]:
    import nncf

    return {"quantizer": f"NNCF {nncf.__version__} quantize (performance preset), symmetric "
                         "int8, per-channel weights"}


RUNTIME = register(Runtime(
    name="openvino-cpu", format="openvino", suffix=".xml", runner=openvino_runner,
    write=write_openvino, load=load_openvino, version=openvino_version,
    versions=partial(versions_with, EXTRA), usage=USAGE, extra=EXTRA, size=openvino_size,
    int8=Int8(write=write_openvino_int8, describe=describe_openvino_int8, needs="nncf",
              label='openvino + nncf (pip install "directnas[openvino]")'),
    unavailable=missing_module("openvino")))

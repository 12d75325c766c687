"""Int8 artifacts: a float32 net statically quantized for its runtime.

* ``pte``: PT2E quantization (torchao ``prepare_pt2e`` / ``convert_pt2e``) with ExecuTorch's
  ``XNNPACKQuantizer`` (symmetric int8, per-channel weights), lowered to XNNPACK;
* ``onnx``: onnxruntime's ``quantize_static`` (int8 per-channel weights, uint8 activations) in
  the QDQ or the QOperator layout;
* ``openvino``: NNCF's post-training ``nncf.quantize`` (the performance preset: symmetric int8,
  per-channel weights) of the OpenVINO model, run by OpenVINO's CPU plugin (VNNI / AMX int8
  kernels where the CPU has them).

All three take the net as deployed (``inference.Classifier``: float32 pixels in [0, 1], normalisation
folded in) and calibrate its activation ranges on ``calib`` (N, C, H, W) images in [0, 1].
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from directnas.runtimes.formats import frozen_copy, lowered_program, to_onnx
from directnas.errors import UserError

INT8_FORMATS = ("pte", "onnx", "openvino")
ONNX_LAYOUTS = ("qdq", "qoperator")
_RUNTIME = {"pte": ("executorch.exir", "executorch"),
            "onnx": ("onnxruntime.quantization", "onnxruntime"),
            "openvino": ("nncf", "openvino + nncf (pip install \"directnas[openvino]\")")}


def parse_int8_formats(text: str) -> list[str]:
    fmts = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in INT8_FORMATS]
    if bad or not fmts:
        raise UserError(f"unknown int8 format {', '.join(bad) or text!r}: use a comma list of "
                        f"{', '.join(INT8_FORMATS)}")
    return list(dict.fromkeys(fmts))


def installed(fmt: str) -> bool:
    """Whether the runtime (and quantizer) of ``fmt`` can be imported."""
    try:
        return importlib.util.find_spec(_RUNTIME[fmt][0]) is not None
    except ModuleNotFoundError:
        return False


def runtime_name(fmt: str) -> str:
    return _RUNTIME[fmt][1]


def pte_int8(net: nn.Module, shape: tuple[int, ...], calib: torch.Tensor) -> bytes:
    """``net`` as an int8 XNNPACK ``.pte`` of input ``shape`` (batch fixed), calibrated on
    ``calib``; refuses nets with ops XNNPACK does not take."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = (torch.zeros(*shape),)
    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = prepare_pt2e(torch.export.export(frozen_copy(net), example).module(), quantizer)
        b = shape[0]
        with torch.no_grad():
            for i in range(0, len(calib) - b + 1, b):  # the exported batch is fixed
                m(calib[i:i + b])
        m = convert_pt2e(m)
        ep = torch.export.export(m, example)
    return lowered_program({"forward": ep})


def onnx_int8(net: nn.Module, shape: tuple[int, ...], calib: np.ndarray,
              layout: str = "qdq") -> bytes:
    """``net`` as an int8 ONNX model (any batch) in ``layout`` (qdq or qoperator)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"x": calib[i:i + 32]} for i in range(0, len(calib), 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    fmt = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[layout]
    with tempfile.TemporaryDirectory(prefix="directnas-int8-") as tmp:
        f32, prep, q = (Path(tmp) / n for n in ("f32.onnx", "prep.onnx", "int8.onnx"))
        f32.write_bytes(to_onnx(net, shape, dynamic_batch=True))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quant_pre_process(str(f32), str(prep))
            quantize_static(str(prep), str(q), Reader(), quant_format=fmt, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        return q.read_bytes()


def openvino_int8(net: nn.Module, shape: tuple[int, ...], calib: np.ndarray) -> Any:
    """``net`` as an int8 ``openvino.Model`` (input ``shape``), NNCF post-training quantization
    calibrated on ``calib`` (N, C, H, W) float32 images in [0, 1], one image per sample."""
    try:
        import nncf
    except ImportError:
        raise UserError('int8 openvino needs nncf: pip install "directnas[openvino]"') from None
    from directnas.runtimes.formats import to_openvino

    model = to_openvino(net, shape)
    b = shape[0]
    samples = [np.ascontiguousarray(calib[i:i + b], dtype=np.float32)
               for i in range(0, len(calib) - b + 1, b)]
    logging.getLogger("nncf").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                             preset=nncf.QuantizationPreset.PERFORMANCE)


def onnx_op_types(path: str | Path) -> dict[str, int]:
    """How many nodes of each op type the ONNX graph at ``path`` holds."""
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def int8_artifact(fmt: str, net: nn.Module, shape: tuple[int, ...], calib: torch.Tensor,
                  layout: str = "qdq") -> bytes:
    if fmt == "pte":
        return pte_int8(net, shape, calib)
    if fmt == "onnx":
        return onnx_int8(net, shape, calib.numpy(), layout)
    if fmt == "openvino":
        raise ValueError("int8 openvino is an openvino.Model, not bytes: use openvino_int8 and "
                         "formats.save_openvino")
    raise UserError(f"unknown int8 format {fmt!r}: use {', '.join(INT8_FORMATS)}")


def describe(fmt: str, layout: str | None = None) -> dict[str, Any]:
    if fmt == "pte":
        return {"quantizer": "XNNPACKQuantizer (PT2E), symmetric int8, per-channel weights"}
    if fmt == "openvino":
        import nncf

        return {"quantizer": f"NNCF {nncf.__version__} quantize (performance preset), symmetric "
                             "int8, per-channel weights"}
    return {"quantizer": f"onnxruntime quantize_static ({layout}), int8 per-channel weights, "
                         "uint8 activations (MinMax)"}

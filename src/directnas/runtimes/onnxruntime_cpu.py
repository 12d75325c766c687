"""``onnxruntime-cpu``: the module exported to ONNX (the one exporter of the package, opset
``ONNX_OPSET``) and run by an onnxruntime ``InferenceSession`` with ``intra_op_num_threads =
threads`` (graph optimisations on).  Ships ``.onnx`` (any batch); int8 by onnxruntime's
``quantize_static`` (int8 per-channel weights, uint8 activations) in the QDQ or the QOperator
layout."""

from __future__ import annotations

import io
import tempfile
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
from directnas.runtimes.common import frozen_copy, version_of, versions_with
from directnas.utils.fileio import write_bytes

ONNX_OPSET = 17
LAYOUTS = ("qdq", "qoperator")
USAGE = """import numpy as np, onnxruntime as ort
sess = ort.InferenceSession("{name}", providers=["CPUExecutionProvider"])
x = np.random.rand({shape}).astype(np.float32)  # pixel values in [0, 1]
logits = sess.run(None, {{"x": x}})[0]
print(logits.argmax(1))"""


def to_onnx(net: nn.Module, shape: Shape, *, dynamic_batch: bool = False) -> bytes:
    """The net (an eval-mode float32 CPU copy) as an ONNX model with input ``x`` and output
    ``y``; ``dynamic_batch``: any batch size, else the batch of ``shape``."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(frozen_copy(net), (torch.zeros(*shape),), buf, input_names=["x"],
                          output_names=["y"], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}} if dynamic_batch else None)
    return buf.getvalue()


def ort_session(model: bytes | str | Path, threads: int) -> Any:
    """An onnxruntime CPU session with fixed threads and full graph optimisation."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("the onnx format and backend onnxruntime-cpu need onnxruntime: "
                        "pip install onnxruntime") from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    src = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def onnxruntime_runner(module: nn.Module, shape: Shape, proto: Protocol) -> Runner:
    """``module`` exported to ONNX at ``shape``, in a session, on a fixed random input."""
    if proto.dtype != "float32":
        raise UserError(f"backend onnxruntime-cpu measures float32 only, not {proto.dtype}: "
                        "drop --dtype or use torch-cpu")
    sess = ort_session(to_onnx(module, shape), proto.threads)
    feed = {"x": np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}

    def run() -> object:
        return sess.run(None, feed)

    return run


def write_onnx(net: nn.Module, shape: Shape, path: Path) -> None:
    write_bytes(path, to_onnx(net, shape, dynamic_batch=True))


def load_onnx(path: Path, x: torch.Tensor, threads: int) -> Runner:
    sess = ort_session(Path(path), threads)
    feed = {"x": x.numpy()}
    return lambda: sess.run(None, feed)


def onnxruntime_version() -> str:
    return f"onnxruntime {version_of('onnxruntime')}"


def onnx_int8(net: nn.Module, shape: Shape, calib: np.ndarray, layout: str = "qdq") -> bytes:
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


def write_onnx_int8(net: nn.Module, shape: Shape, calib: torch.Tensor, path: Path,
                    layout: str | None) -> None:
    write_bytes(path, onnx_int8(net, shape, calib.numpy(), layout or LAYOUTS[0]))


def describe_onnx_int8(layout: str | None) -> dict[str, Any]:
    return {"quantizer": f"onnxruntime quantize_static ({layout}), int8 per-channel weights, "
                         "uint8 activations (MinMax)"}


RUNTIME = register(Runtime(
    name="onnxruntime-cpu", format="onnx", suffix=".onnx", runner=onnxruntime_runner,
    write=write_onnx, load=load_onnx, version=onnxruntime_version,
    versions=partial(versions_with, "onnxruntime"), usage=USAGE, any_batch=True,
    int8=Int8(write=write_onnx_int8, describe=describe_onnx_int8, needs="onnxruntime.quantization",
              label="onnxruntime", layouts=LAYOUTS),
    unavailable=missing_module("onnxruntime")))

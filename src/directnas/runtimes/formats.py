"""Deployment formats: write a module as an artifact and run an artifact in its own runtime.

===========  ==========================  =============================================
format       runtime                     optional extra
===========  ==========================  =============================================
pte          ExecuTorch + XNNPACK        ``pip install "directnas[executorch]"``
onnx         onnxruntime (CPU)           (core dependency)
openvino     OpenVINO (CPU)              ``pip install "directnas[openvino]"``
torchscript  libtorch / torch.jit        (core dependency)
===========  ==========================  =============================================

``to_bytes``-style writers take an eval-mode float32 CPU module and an example input; runners
take an artifact (bytes or path) and return a callable that runs one inference on a fixed input.
Several nets can be lowered to ExecuTorch in one call (``pte_program``: one program with one
method per net), which costs about a third of lowering them one by one.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from directnas.errors import UserError

FORMATS = ("pte", "onnx", "openvino", "torchscript")
SUFFIX = {"pte": ".pte", "onnx": ".onnx", "openvino": ".xml", "torchscript": ".ts"}
ONNX_OPSET = 17


def _need(module: str, extra: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{what} needs {module.split('.')[0]}: pip install \"directnas[{extra}]\"") \
            from None


def frozen_copy(module: nn.Module) -> nn.Module:
    """An eval-mode float32 CPU copy (the caller's module is never moved or changed)."""
    return copy.deepcopy(module).eval().float().cpu()


# ---- ExecuTorch / XNNPACK ------------------------------------------------------------------------
def _lower(programs: dict[str, Any]) -> Any:
    _need("executorch.exir", "executorch", "the pte format (ExecuTorch)")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])


def not_delegated(edge: Any, method: str = "forward") -> list[str]:
    """The ops of ``method`` that XNNPACK did not take (they would run on the portable kernels)."""
    gm = edge.exported_program(method).graph_module
    out = []
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        name = str(getattr(node.target, "__name__", node.target))
        if "executorch_call_delegate" in name or "getitem" in name:
            continue
        out.append(name)
    return sorted(set(out))


def pte_program(nets: dict[str, tuple[nn.Module, tuple[int, ...]]]) -> bytes:
    """One ExecuTorch program (XNNPACK-delegated) with one method per ``name: (net, shape)``.
    Refuses nets with ops XNNPACK does not take, naming them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps = {name: torch.export.export(frozen_copy(net), (torch.zeros(*shape),))
               for name, (net, shape) in nets.items()}
    return lowered_program(eps)


def lowered_program(eps: dict[str, Any]) -> bytes:
    """The ExecuTorch program of ``name: ExportedProgram`` lowered to XNNPACK; refuses programs
    with ops XNNPACK does not take, naming them."""
    edge = _lower(eps)
    for name in eps:
        bad = not_delegated(edge, name)
        if bad:
            raise UserError(f"{name}: ops not delegated to XNNPACK: {', '.join(bad)}; use another "
                            "backend (openvino-cpu, onnxruntime-cpu) or a space without them")
    return bytes(edge.to_executorch().buffer)


def to_pte(net: nn.Module, shape: tuple[int, ...]) -> bytes:
    """The net as an XNNPACK-delegated ``.pte`` (method ``forward``)."""
    return pte_program({"forward": (net, shape)})


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what C++ code writes to file descriptor 2 to /dev/null for the block (ExecuTorch's
    threadpool reset logs six lines of cpuinfo probing to stderr on every call)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def set_executorch_threads(threads: int) -> None:
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    with native_stderr_silenced():
        _unsafe_reset_threadpool(int(threads))


def _as_path(artifact: bytes | str | Path, suffix: str) -> Path:
    if isinstance(artifact, (str, Path)):
        return Path(artifact)
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="directnas-")
    with os.fdopen(fd, "wb") as f:
        f.write(artifact)
    return Path(name)


class PteProgram:
    """A loaded ExecuTorch program; ``runner(method, shape)`` runs one of its methods."""

    def __init__(self, artifact: bytes | str | Path, threads: int) -> None:
        _need("executorch.runtime", "executorch", "the pte format (ExecuTorch)")
        from executorch.runtime import Runtime

        set_executorch_threads(threads)
        path = _as_path(artifact, ".pte")
        self.program = Runtime.get().load_program(str(path))
        if not isinstance(artifact, (str, Path)):
            path.unlink()  # the program holds the bytes
        self.threads = threads

    def runner(self, method: str, x: torch.Tensor) -> Callable[[], Any]:
        m = self.program.load_method(method)
        args = (x.contiguous(),)

        def run() -> Any:
            return m.execute(args)

        return run


# ---- ONNX / onnxruntime --------------------------------------------------------------------------
def to_onnx(net: nn.Module, shape: tuple[int, ...], *, dynamic_batch: bool = False) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(frozen_copy(net), (torch.zeros(*shape),), buf, input_names=["x"],
                          output_names=["y"], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}} if dynamic_batch else None)
    return buf.getvalue()


def ort_session(model: bytes | str | Path, threads: int) -> Any:
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


# ---- OpenVINO ------------------------------------------------------------------------------------
def to_openvino(net: nn.Module, shape: tuple[int, ...]) -> Any:
    """An ``openvino.Model`` (save it with ``openvino.save_model``)."""
    ov = _need("openvino", "openvino", "the openvino format")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ov.convert_model(frozen_copy(net), example_input=torch.zeros(*shape))


def ov_compile(model: Any, threads: int) -> Any:
    ov = _need("openvino", "openvino", "the openvino format")
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
    """Save an ``openvino.Model`` as ``path`` (.xml) + its .bin, atomically (weights as they are)."""
    import openvino as ov

    path = path.with_suffix(".xml")
    tmp = path.with_name(f".{path.stem}.tmp.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
    tmp.replace(path)
    return path


def artifact_size(fmt: str, path: Path) -> int:
    """Bytes on disk of the artifact at ``path`` (OpenVINO: the .xml and its .bin)."""
    path = Path(path)
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if fmt == "openvino" else 0)


# ---- TorchScript ---------------------------------------------------------------------------------
def to_torchscript(net: nn.Module, shape: tuple[int, ...]) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.trace(frozen_copy(net), torch.zeros(*shape))
        ts = torch.jit.freeze(ts)
    buf = io.BytesIO()
    torch.jit.save(ts, buf)
    return buf.getvalue()


# ---- one interface over the four -----------------------------------------------------------------
def write_artifact(fmt: str, net: nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    """Write ``net`` in format ``fmt`` to ``path`` (its suffix set by the format), atomically."""
    from directnas.utils.fileio import write_bytes

    path = path.with_suffix(SUFFIX[fmt])
    if fmt == "pte":
        write_bytes(path, to_pte(net, shape))
    elif fmt == "onnx":
        write_bytes(path, to_onnx(net, shape, dynamic_batch=True))
    elif fmt == "torchscript":
        write_bytes(path, to_torchscript(net, shape))
    elif fmt == "openvino":
        save_openvino(to_openvino(net, shape), path)
    else:
        raise UserError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)} or all")
    return path


def artifact_runner(fmt: str, path: str | Path, x: torch.Tensor, threads: int
                    ) -> Callable[[], Any]:
    """A callable running the artifact once on ``x`` in its own runtime (returns its output)."""
    path = Path(path)
    if fmt == "pte":
        return PteProgram(path, threads).runner("forward", x)
    if fmt == "onnx":
        sess = ort_session(path, threads)
        feed = {"x": x.numpy()}
        return lambda: sess.run(None, feed)
    if fmt == "openvino":
        req = ov_compile(path, threads).create_infer_request()
        xn = x.numpy()
        return lambda: req.infer({0: xn})
    if fmt == "torchscript":
        torch.set_num_threads(threads)
        ts = torch.jit.load(str(path))

        def run() -> Any:
            with torch.inference_mode():
                return ts(x)

        return run
    raise UserError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")


def as_numpy(out: Any) -> np.ndarray:
    """The first output of any runner as a numpy array."""
    if hasattr(out, "to_tuple"):  # OpenVINO's OVDict
        out = out.to_tuple()[0]
    if isinstance(out, (list, tuple)):
        out = out[0]
    if isinstance(out, torch.Tensor):
        return out.detach().float().numpy()
    return np.asarray(out)


def runtime_version(fmt: str) -> str:
    mod = {"pte": "executorch", "onnx": "onnxruntime", "openvino": "openvino",
           "torchscript": "torch"}[fmt]
    if mod == "executorch":
        from importlib.metadata import version

        return f"executorch {version('executorch')}"
    m = __import__(mod)
    return f"{mod} {getattr(m, '__version__', 'unknown')}"

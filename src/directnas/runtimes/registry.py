"""Latency backends: each turns an ``nn.Module`` and an input shape into a runner of one inference.

``BACKENDS`` is the registry (``--backend NAME``):

  * ``torch-cpu``: eager PyTorch on the CPU with ``threads`` intra-op threads;
  * ``onnxruntime-cpu``: the module exported to ONNX (in memory) and run by an onnxruntime
    ``InferenceSession`` with ``intra_op_num_threads = threads`` (graph optimisations on);
  * ``executorch-xnnpack``: ``torch.export`` -> XNNPACK-delegated ExecuTorch program, run in
    ``executorch.runtime`` with its thread pool set to ``threads`` (extra ``[executorch]``);
  * ``openvino-cpu``: ``openvino.convert_model`` -> ``compile_model("CPU")`` with the latency
    hint and ``threads`` inference threads (extra ``[openvino]``);
  * ``cuda``: eager PyTorch on the GPU, timed with CUDA events after a synchronise; a clear
    ``UserError`` when no GPU is present.

A runner is a callable; a runner that has its own clock (CUDA events) also has ``time_ms()``,
which runs once and returns the elapsed milliseconds.  ``profile.time_runner`` uses it when there.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from directnas.errors import UserError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ONNX_OPSET = 17


@dataclass(frozen=True)
class Protocol:
    batch_size: int = 1
    threads: int = 1  # batch-1 latency: one thread (two are slower for small nets here)
    warmup: int = 10
    repeats: int = 30
    dtype: str = "float32"
    channels_last: bool = False
    stat: str = "p10"  # statistic of the repeats kept per round as "ms" (see STATS)
    clock: str = "wall"  # "wall" (perf_counter) or "cpu" (this thread's CPU time; threads=1 only)
    rounds: int = 5  # interleaved rounds; the median over rounds is kept


# "median" is the field's protocol.  On a shared, loaded machine a call is preempted with a
# probability that grows with its length, so the median of a whole network rises more than the
# sum of its ops' medians; a low quantile ("p10", "min") is then closer to additive.
# The "cpu" clock (single-threaded CPU backends only) leaves out the time the process waits for a
# core, which on a loaded machine is most of a long call's spread.
STATS = ("median", "p25", "p10", "min", "mean")
CLOCKS = ("wall", "cpu")


Runner = Callable[[], object]
RunnerFactory = Callable[[nn.Module, tuple[int, ...], Protocol], Runner]


def _dtype(proto: Protocol) -> torch.dtype:
    if proto.dtype not in DTYPES:
        raise UserError(f"unknown dtype {proto.dtype!r}: use one of {', '.join(DTYPES)}")
    return DTYPES[proto.dtype]


def _torch_cpu(module: nn.Module, shape: tuple[int, ...], proto: Protocol) -> Runner:
    torch.set_num_threads(proto.threads)
    dtype = _dtype(proto)
    module = copy.deepcopy(module).eval().to(dtype)  # never change the caller's module
    x = torch.randn(*shape, dtype=dtype)
    if proto.channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run() -> object:
        with torch.inference_mode():
            return module(x)

    return run


def export_onnx(module: nn.Module, shape: tuple[int, ...]) -> bytes:
    """The module (eval mode, float32, on the CPU) as an ONNX model with input ``x``."""
    module = copy.deepcopy(module).eval().float().cpu()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), buf, input_names=["x"],
                          output_names=["y"], opset_version=ONNX_OPSET, dynamo=False)
    return buf.getvalue()


def ort_session(model: bytes, threads: int) -> "object":
    """An onnxruntime CPU session with fixed threads and full graph optimisation."""
    from directnas.runtimes.formats import ort_session as session

    return session(model, threads)


def _onnxruntime_cpu(module: nn.Module, shape: tuple[int, ...], proto: Protocol) -> Runner:
    if proto.dtype != "float32":
        raise UserError(f"backend onnxruntime-cpu measures float32 only, not {proto.dtype}: "
                        "drop --dtype or use torch-cpu")
    import numpy as np

    sess = ort_session(export_onnx(module, shape), proto.threads)
    feed = {"x": np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}

    def run() -> object:
        return sess.run(None, feed)  # type: ignore[attr-defined]

    return run


class _CudaRunner:
    """Runs on the GPU; ``time_ms`` brackets one call with CUDA events."""

    def __init__(self, module: nn.Module, x: torch.Tensor) -> None:
        self.module, self.x = module, x
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def __call__(self) -> object:
        with torch.inference_mode():
            y = self.module(self.x)
        torch.cuda.synchronize()
        return y

    def time_ms(self) -> float:
        torch.cuda.synchronize()
        self.start.record()
        with torch.inference_mode():
            self.module(self.x)
        self.end.record()
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))


def _cuda(module: nn.Module, shape: tuple[int, ...], proto: Protocol) -> Runner:
    if not torch.cuda.is_available():
        raise UserError("backend cuda needs a CUDA GPU and a CUDA build of torch, and none is "
                        "present here: use --backend torch-cpu or onnxruntime-cpu")
    dtype = _dtype(proto)
    module = copy.deepcopy(module).eval().to("cuda", dtype)  # never change the caller's module
    x = torch.randn(*shape, dtype=dtype, device="cuda")
    if proto.channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return _CudaRunner(module, x)


def _float32_only(name: str, proto: Protocol) -> None:
    if proto.dtype != "float32":
        raise UserError(f"backend {name} measures float32 only, not {proto.dtype}: drop --dtype")


def _executorch_xnnpack(module: nn.Module, shape: tuple[int, ...], proto: Protocol) -> Runner:
    return executorch_runners({"forward": (module, shape)}, proto)["forward"]


def _lower_chunk(part: dict[str, tuple[nn.Module, tuple[int, ...]]]) -> bytes:
    """One chunk lowered to a pte program (``executorch_runners``' worker)."""
    from directnas.runtimes.formats import pte_program

    return pte_program(part)


def lowering_workers(chunks: int) -> int:
    """Processes lowering to ExecuTorch at once: one per usable core (``DIRECTNAS_LOWER_WORKERS``
    overrides; 1 lowers in this process)."""
    env = os.environ.get("DIRECTNAS_LOWER_WORKERS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(chunks, int(env) if env else (cores or 1)))


def executorch_runners(items: dict[str, tuple[nn.Module, tuple[int, ...]]], proto: Protocol,
                       *, chunk: int = 16) -> dict[str, Runner]:
    """Runners for many modules, lowered to ExecuTorch/XNNPACK in chunks of at most ``chunk``
    (one program with one method per module: about 3x cheaper than lowering each alone), the
    chunks in parallel processes, one per core (lowering is single-threaded Python: 3-7 s per
    op here, so a space of 50 ops + 24 calibration nets takes minutes)."""
    from directnas.runtimes.formats import PteProgram

    _float32_only("executorch-xnnpack", proto)
    names = list(items)
    workers = lowering_workers(-(-len(names) // chunk))
    size = max(1, min(chunk, -(-len(names) // (2 * workers)))) if workers > 1 else chunk
    groups = [names[i:i + size] for i in range(0, len(names), size)]
    parts = [{f"m{j}": items[n] for j, n in enumerate(g)} for g in groups]
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        # fork, as DataLoader workers do: spawn would re-run a caller's unguarded script
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        try:
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=torch.set_num_threads,
                                     initargs=(1,)) as pool:
                programs = list(pool.map(_lower_chunk, parts))
        except BrokenProcessPool:
            log.warning("parallel ExecuTorch lowering failed; lowering in this process")
            programs = [_lower_chunk(p) for p in parts]
    else:
        programs = [_lower_chunk(p) for p in parts]
    out: dict[str, Runner] = {}
    for g, program in zip(groups, programs):
        prog = PteProgram(program, proto.threads)
        for j, n in enumerate(g):
            out[n] = prog.runner(f"m{j}", torch.randn(*items[n][1]))
    return out


def _openvino_cpu(module: nn.Module, shape: tuple[int, ...], proto: Protocol) -> Runner:
    from directnas.runtimes.formats import ov_compile, to_openvino

    _float32_only("openvino-cpu", proto)
    req = ov_compile(to_openvino(module, shape), proto.threads).create_infer_request()
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)

    def run() -> object:
        return req.infer({0: x})

    return run


BACKENDS: dict[str, RunnerFactory] = {
    "torch-cpu": _torch_cpu,
    "onnxruntime-cpu": _onnxruntime_cpu,
    "executorch-xnnpack": _executorch_xnnpack,
    "openvino-cpu": _openvino_cpu,
    "cuda": _cuda,
}
# the deployment format each backend ships (``directnas export --format``)
BACKEND_FORMAT = {"torch-cpu": "torchscript", "onnxruntime-cpu": "onnx",
                  "executorch-xnnpack": "pte", "openvino-cpu": "openvino", "cuda": "torchscript"}


def make_runners(backend: str, items: dict[str, tuple[nn.Module, tuple[int, ...]]],
                 proto: Protocol) -> dict[str, Runner]:
    """Runners for many modules at once (batched where the backend lowers in bulk)."""
    if backend == "executorch-xnnpack":
        return executorch_runners(items, proto)
    factory = get_backend(backend)
    return {k: factory(m, s, proto) for k, (m, s) in items.items()}


def get_backend(name: str) -> RunnerFactory:
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}: use one of {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def backend_versions(name: str) -> dict[str, str]:
    """Library versions (and the GPU's name) that a table measured on ``name`` depends on."""
    out = {"torch": torch.__version__}
    if name.startswith("onnxruntime"):
        try:
            import onnxruntime as ort
            out["onnxruntime"] = ort.__version__
        except ImportError:
            pass
    if name == "executorch-xnnpack":
        try:
            from importlib.metadata import version
            out["executorch"] = version("executorch")
        except Exception:
            pass
    if name == "openvino-cpu":
        try:
            import openvino as ov
            out["openvino"] = ov.__version__
        except ImportError:
            pass
    if name == "cuda" and torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out

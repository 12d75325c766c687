"""``executorch-xnnpack``: ``torch.export`` -> an XNNPACK-delegated ExecuTorch program, run in
``executorch.runtime`` with its thread pool set to ``threads`` (extra ``[executorch]``).  Ships
``.pte`` (fixed batch, method ``forward``); int8 by PT2E quantization (torchao ``prepare_pt2e``
/ ``convert_pt2e``) with ExecuTorch's ``XNNPACKQuantizer`` (symmetric int8, per-channel weights).

Many modules are lowered in one program with one method each (``pte_program``), about a third of
the cost of lowering them one by one; ``executorch_runners`` lowers such chunks in parallel
processes.  A net with an op XNNPACK does not take is refused, naming the op.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from directnas.errors import UserError
from directnas.runtimes.base import (Int8, Protocol, Runner, Runtime, Shape, missing_module,
                                     register)
from directnas.runtimes.common import (as_path, float32_only, frozen_copy, native_stderr_silenced,
                                       need, version_of, versions_with)
from directnas.utils.fileio import write_bytes

log = logging.getLogger(__name__)
EXTRA = "executorch"
USAGE = """from executorch.runtime import Runtime
import torch
method = Runtime.get().load_program("{name}").load_method("forward")
x = torch.rand({shape})  # pixel values in [0, 1]
print(method.execute((x,))[0].argmax(1))"""


# ---- lowering ------------------------------------------------------------------------------------
def _lower(programs: dict[str, Any]) -> Any:
    need("executorch.exir", EXTRA, "the pte format (ExecuTorch)")
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


def pte_program(nets: dict[str, tuple[nn.Module, Shape]]) -> bytes:
    """One ExecuTorch program (XNNPACK-delegated) with one method per ``name: (net, shape)``.
    Refuses nets with ops XNNPACK does not take, naming them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eps = {name: torch.export.export(frozen_copy(net), (torch.zeros(*shape),))
               for name, (net, shape) in nets.items()}
    return lowered_program(eps)


def to_pte(net: nn.Module, shape: Shape) -> bytes:
    """The net as an XNNPACK-delegated ``.pte`` (method ``forward``)."""
    return pte_program({"forward": (net, shape)})


# ---- running -------------------------------------------------------------------------------------
def set_executorch_threads(threads: int) -> None:
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    with native_stderr_silenced():
        _unsafe_reset_threadpool(int(threads))


class PteProgram:
    """A loaded ExecuTorch program; ``runner(method, x)`` runs one of its methods on ``x``."""

    def __init__(self, artifact: bytes | str | Path, threads: int) -> None:
        need("executorch.runtime", EXTRA, "the pte format (ExecuTorch)")
        from executorch.runtime import Runtime as EtRuntime

        set_executorch_threads(threads)
        path = as_path(artifact, ".pte")
        self.program = EtRuntime.get().load_program(str(path))
        if not isinstance(artifact, (str, Path)):
            path.unlink()  # the program holds the bytes
        self.threads = threads

    def runner(self, method: str, x: torch.Tensor) -> Callable[[], Any]:
        m = self.program.load_method(method)
        args = (x.contiguous(),)

        def run() -> Any:
            return m.execute(args)

        return run


def _lower_chunk(part: dict[str, tuple[nn.Module, Shape]]) -> bytes:
    """One chunk lowered to a pte program (``executorch_runners``' worker)."""
    return pte_program(part)


def lowering_workers(chunks: int) -> int:
    """Processes lowering to ExecuTorch at once: one per usable core (``DIRECTNAS_LOWER_WORKERS``
    overrides; 1 lowers in this process)."""
    env = os.environ.get("DIRECTNAS_LOWER_WORKERS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(chunks, int(env) if env else (cores or 1)))


def _packed(part: dict[str, tuple[nn.Module, Shape]]) -> bytes:
    """A chunk as plain bytes: sent to a worker as a file-descriptor-shared tensor per weight, a
    large space would exhaust the process's open files."""
    buf = io.BytesIO()
    torch.save(part, buf)
    return buf.getvalue()


def _lower_packed(blob: bytes) -> bytes:
    return _lower_chunk(torch.load(io.BytesIO(blob), weights_only=False))


def _lower_all(parts: list[dict[str, tuple[nn.Module, Shape]]], workers: int) -> list[bytes]:
    """The programs of ``parts``, lowered in ``workers`` processes (in this one when 1)."""
    if workers <= 1:
        return [_lower_chunk(p) for p in parts]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # fork, as DataLoader workers do: spawn would re-run a caller's unguarded script
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=torch.set_num_threads,
                                 initargs=(1,)) as pool:
            return list(pool.map(_lower_packed, [_packed(p) for p in parts]))
    except BrokenProcessPool:
        log.warning("parallel ExecuTorch lowering failed; lowering in this process")
        return [_lower_chunk(p) for p in parts]


def executorch_runners(items: dict[str, tuple[nn.Module, Shape]], proto: Protocol,
                       *, chunk: int = 16) -> dict[str, Runner]:
    """Runners for many modules, lowered to ExecuTorch/XNNPACK in chunks of at most ``chunk``
    (one program with one method per module: about 3x cheaper than lowering each alone), the
    chunks in parallel processes, one per core (lowering is single-threaded Python: 3-7 s per
    op, so a space of 50 ops + 24 calibration nets takes minutes)."""
    float32_only("executorch-xnnpack", proto)
    names = list(items)
    workers = lowering_workers(-(-len(names) // chunk))
    size = max(1, min(chunk, -(-len(names) // (2 * workers)))) if workers > 1 else chunk
    groups = [names[i:i + size] for i in range(0, len(names), size)]
    parts = [{f"m{j}": items[n] for j, n in enumerate(g)} for g in groups]
    programs = _lower_all(parts, workers)
    out: dict[str, Runner] = {}
    for g, program in zip(groups, programs):
        prog = PteProgram(program, proto.threads)
        for j, n in enumerate(g):
            out[n] = prog.runner(f"m{j}", torch.randn(*items[n][1]))
    return out


def executorch_runner(module: nn.Module, shape: Shape, proto: Protocol) -> Runner:
    """``module`` lowered alone, on a fixed random input."""
    return executorch_runners({"forward": (module, shape)}, proto)["forward"]


# ---- the artifact --------------------------------------------------------------------------------
def write_pte(net: nn.Module, shape: Shape, path: Path) -> None:
    write_bytes(path, to_pte(net, shape))


def load_pte(path: Path, x: torch.Tensor, threads: int) -> Runner:
    return PteProgram(Path(path), threads).runner("forward", x)


def executorch_version() -> str:
    return f"executorch {version_of(EXTRA, distribution=True)}"


def pte_int8(net: nn.Module, shape: Shape, calib: torch.Tensor) -> bytes:
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


def write_pte_int8(net: nn.Module, shape: Shape, calib: torch.Tensor, path: Path,
                   layout: str | None) -> None:
    write_bytes(path, pte_int8(net, shape, calib))


def describe_pte_int8(layout: str | None) -> dict[str, Any]:
    return {"quantizer": "XNNPACKQuantizer (PT2E), symmetric int8, per-channel weights"}


RUNTIME = register(Runtime(
    name="executorch-xnnpack", format="pte", suffix=".pte", runner=executorch_runner,
    runners=executorch_runners, write=write_pte, load=load_pte, version=executorch_version,
    versions=partial(versions_with, EXTRA, distribution=True), usage=USAGE, extra=EXTRA,
    int8=Int8(write=write_pte_int8, describe=describe_pte_int8, needs="executorch.exir",
              label="executorch"),
    unavailable=missing_module("executorch")))

"""``cuda``: eager PyTorch on the GPU, timed with CUDA events after a synchronise; a clear
``UserError`` when no GPU is present.  Its artifact is TorchScript, run and timed on the CPU by
``torch-cpu``."""

from __future__ import annotations

import copy

import torch
from torch import nn

from directnas.errors import UserError
from directnas.runtimes import torch_cpu
from directnas.runtimes.base import Protocol, Runner, Runtime, Shape, register
from directnas.runtimes.common import torch_dtype, torch_versions


class CudaRunner:
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


def cuda_runner(module: nn.Module, shape: Shape, proto: Protocol) -> Runner:
    """A copy of ``module`` in ``proto.dtype`` on the GPU, on a fixed random input there."""
    if not torch.cuda.is_available():
        raise UserError("backend cuda needs a CUDA GPU and a CUDA build of torch, and none is "
                        "present here: use --backend torch-cpu or onnxruntime-cpu")
    dtype = torch_dtype(proto)
    module = copy.deepcopy(module).eval().to("cuda", dtype)  # never change the caller's module
    x = torch.randn(*shape, dtype=dtype, device="cuda")
    if proto.channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    return CudaRunner(module, x)


def cuda_versions() -> dict[str, str]:
    out = torch_versions()
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def no_gpu() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA GPU here"


TS = torch_cpu.RUNTIME
RUNTIME = register(Runtime(
    name="cuda", format=TS.format, suffix=TS.suffix, runner=cuda_runner, write=TS.write,
    load=TS.load, version=TS.version, versions=cuda_versions, usage=TS.usage, any_batch=True,
    artifact_runtime=TS.name, unavailable=no_gpu))

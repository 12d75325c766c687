"""``torch-cpu``: eager PyTorch on the CPU with ``threads`` intra-op threads; ships TorchScript
(``torch.jit.trace`` + ``freeze``, ``.ts``), run by ``torch.jit.load`` (libtorch)."""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from directnas.runtimes.base import Protocol, Runner, Runtime, Shape, register
from directnas.runtimes.common import frozen_copy, torch_dtype, torch_versions
from directnas.utils.fileio import write_bytes

USAGE = """import torch
net = torch.jit.load("{name}")
x = torch.rand({shape})  # pixel values in [0, 1]
with torch.inference_mode():
    print(net(x).argmax(1))"""


def torch_runner(module: nn.Module, shape: Shape, proto: Protocol) -> Runner:
    """Eager ``module`` (a copy in ``proto.dtype``) on a fixed random input (timed with
    ``proto.threads`` intra-op threads: ``latency.measure.time_runner`` sets them)."""
    dtype = torch_dtype(proto)
    module = copy.deepcopy(module).eval().to(dtype)  # never change the caller's module
    x = torch.randn(*shape, dtype=dtype)
    if proto.channels_last:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run() -> object:
        with torch.inference_mode():
            return module(x)

    return run


def to_torchscript(net: nn.Module, shape: Shape) -> bytes:
    """The net traced and frozen as a TorchScript file's bytes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ts = torch.jit.trace(frozen_copy(net), torch.zeros(*shape))
        ts = torch.jit.freeze(ts)
    buf = io.BytesIO()
    torch.jit.save(ts, buf)
    return buf.getvalue()


def write_torchscript(net: nn.Module, shape: Shape, path: Path) -> None:
    write_bytes(path, to_torchscript(net, shape))


def load_torchscript(path: Path, x: torch.Tensor, threads: int) -> Runner:
    # ``threads`` is set around the calls by the caller (latency.measure.time_runner when
    # timed, deploy.export.artifact_logits for the outputs)
    ts = torch.jit.load(str(path))

    def run() -> Any:
        with torch.inference_mode():
            return ts(x)

    return run


def torch_version() -> str:
    return f"torch {torch.__version__}"


RUNTIME = register(Runtime(
    name="torch-cpu", format="torchscript", suffix=".ts", runner=torch_runner,
    write=write_torchscript, load=load_torchscript, version=torch_version,
    versions=torch_versions, usage=USAGE, any_batch=True))

"""Helpers the runtimes share: the module copy they time or export, the dtype of a protocol,
optional imports with a one-line hint, outputs as numpy, artifacts given as bytes."""

from __future__ import annotations

import contextlib
import copy
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from directnas.errors import UserError
from directnas.runtimes.base import DTYPES, Protocol


def frozen_copy(module: nn.Module) -> nn.Module:
    """An eval-mode float32 CPU copy (the caller's module is never moved or changed)."""
    return copy.deepcopy(module).eval().float().cpu()


def torch_dtype(proto: Protocol) -> torch.dtype:
    """The torch dtype of ``proto.dtype``; a one-line error naming the choices otherwise."""
    if proto.dtype not in DTYPES:
        raise UserError(f"unknown dtype {proto.dtype!r}: use one of {', '.join(DTYPES)}")
    return DTYPES[proto.dtype]


def float32_only(name: str, proto: Protocol) -> None:
    """Refuse a protocol with another dtype than float32 for backend ``name``."""
    if proto.dtype != "float32":
        raise UserError(f"backend {name} measures float32 only, not {proto.dtype}: drop --dtype")


def need(module: str, extra: str, what: str) -> Any:
    """``module`` imported, or a one-line error saying which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise UserError(f"{what} needs {package}: pip install \"directnas[{extra}]\"") from None


def as_numpy(out: Any) -> np.ndarray:
    """The first output of any runner as a numpy array."""
    if hasattr(out, "to_tuple"):  # OpenVINO's OVDict
        out = out.to_tuple()[0]
    if isinstance(out, (list, tuple)):
        out = out[0]
    if isinstance(out, torch.Tensor):
        return out.detach().float().numpy()
    return np.asarray(out)


def as_path(artifact: bytes | str | Path, suffix: str) -> Path:
    """The artifact's path; bytes are written to a new temporary file with ``suffix`` first."""
    if isinstance(artifact, (str, Path)):
        return Path(artifact)
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="directnas-")
    with os.fdopen(fd, "wb") as f:
        f.write(artifact)
    return Path(name)


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


def torch_versions() -> dict[str, str]:
    """The library versions every runtime's table depends on."""
    return {"torch": str(torch.__version__)}  # a plain str: tables and checkpoints hold it


def version_of(module: str, *, distribution: bool = False) -> str:
    """The installed version of ``module``: its ``__version__``, or with ``distribution`` its
    package metadata's (without importing it); ImportError when it is not installed."""
    if distribution:
        from importlib.metadata import version

        return version(module)
    return str(getattr(importlib.import_module(module), "__version__", "unknown"))


def versions_with(module: str, *, distribution: bool = False) -> dict[str, str]:
    """``torch_versions`` and the version of ``module`` when it is installed."""
    out = torch_versions()
    try:
        out[module] = version_of(module, distribution=distribution)
    except ImportError:
        pass
    return out

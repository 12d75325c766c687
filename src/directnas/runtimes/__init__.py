"""Runtimes: one module per runtime, each registering one ``Runtime`` record (how to time a net
in it, how to write its artifact and run it, its versions); the registry is in ``base``.

  --backend           --format     runs in                     needs
  executorch-xnnpack  pte          ExecuTorch + XNNPACK        pip install "directnas[executorch]"
  onnxruntime-cpu     onnx         onnxruntime (CPU)           (core dependency)
  openvino-cpu        openvino     OpenVINO (CPU)              pip install "directnas[openvino]"
  torch-cpu           torchscript  eager PyTorch / torch.jit   (core dependency)
  cuda                torchscript  eager PyTorch on the GPU    a CUDA build of torch
                                   (its artifact runs and is timed on torch-cpu)

Adding a runtime: a module here that ends with ``register(Runtime(...))``, and its name in
``MODULES``.  The order of ``MODULES`` is the order of ``names()`` and ``formats()``.
"""

import importlib

from directnas.runtimes.base import (ACROSS, CLOCKS, DEFAULT, DEPLOYMENT, DTYPES, STATS, Int8,
                                     Protocol, Runner, RunnerFactory, Runtime, best_installed,
                                     by_format, for_backend, formats, get, int8_formats, lowering,
                                     names, register, unregister)

MODULES = ("executorch_xnnpack", "onnxruntime_cpu", "openvino_cpu", "torch_cpu", "cuda")

for _m in MODULES:
    importlib.import_module(f"directnas.runtimes.{_m}")

__all__ = ["ACROSS", "CLOCKS", "DEFAULT", "DEPLOYMENT", "DTYPES", "STATS", "Int8", "Protocol",
           "Runner", "RunnerFactory", "Runtime", "best_installed", "by_format", "for_backend",
           "formats", "get", "int8_formats", "lowering", "names", "register", "unregister",
           "MODULES"]

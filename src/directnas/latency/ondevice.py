"""Export a space's ops as a bundle of ONNX models for ``scripts/ondevice_profile.py``.

The bundle is a folder::

    manifest.json        {"format": "directnas-ops", "version": 1, "space": ..., "ops": [
                           {"key": "mbconv:k3:e3:in16:out24:s1:hw14", "file": "ops/0003.onnx",
                            "input_name": "x", "input_shape": [1, 16, 14, 14]}, ...]}
    ops/0000.onnx ...

Copy it with the script to the device, run the script there, and convert its output with
``directnas latency import --format ondevice``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

from directnas.utils.fileio import write_bytes, write_json
from directnas.runtimes.onnxruntime_cpu import to_onnx
from directnas.latency.measure import space_modules
from directnas.space.space import SearchSpace

log = logging.getLogger(__name__)
BUNDLE_FORMAT = "directnas-ops"
BUNDLE_VERSION = 1


def export_ops(space: SearchSpace, out_dir: str | Path, *, batch_size: int = 1,
               progress: Callable[[Iterable], Iterable] = lambda it: it) -> Path:
    """Write one ONNX model per fixed part and candidate op of ``space``; returns the manifest."""
    out = Path(out_dir)
    ops = []
    todo = list(space_modules(space))
    for i, (key, module, shape) in enumerate(progress(todo)):
        shape = (batch_size,) + tuple(shape[1:])
        rel = f"ops/{i:04d}.onnx"
        write_bytes(out / rel, to_onnx(module, shape))
        ops.append({"key": key, "file": rel, "input_name": "x", "input_shape": list(shape)})
    manifest = out / "manifest.json"
    write_json(manifest, {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "space": space.name,
                          "space_fingerprint": space.fingerprint(), "batch_size": batch_size,
                          "dtype": "float32", "ops": ops})
    log.info("exported %d ops of %s to %s", len(ops), space.name, out)
    return manifest

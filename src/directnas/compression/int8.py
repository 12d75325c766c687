"""Real int8 inference: the compressed net as int8 artifacts of its runtimes, beside their
float32 counterparts, checked on the real test set and timed interleaved in the same runtime.

For every format of ``cfg.int8_formats`` (a runtime that is not installed is skipped with a
warning) the out folder gets ``model_fp32.<ext>`` and ``model_int8.<ext>``, both taking float32
(N, C, H, W) pixels in [0, 1] with the normalisation folded in (``models.classifier.Classifier``):

* ``pte``: ExecuTorch + XNNPACK, PT2E with ``XNNPACKQuantizer``
  (``runtimes.executorch_xnnpack.pte_int8``);
* ``onnx``: onnxruntime ``quantize_static``; both the QDQ and the QOperator layouts are made and
  timed, the faster one at the timed batch / threads is kept (``onnx_layout`` says which);
* ``openvino``: NNCF post-training quantization, run by OpenVINO's CPU plugin
  (``runtimes.openvino_cpu.openvino_int8``).

All are exported and timed at batch ``cfg.int8_batch`` (``--int8-batch``, default 1: a served
request; a larger batch is where int8 arithmetic, not per-call overhead, sets the time).

``export.json`` (and ``methods_report.int8`` of metrics.json) records per artifact the figures of
``directnas export`` (accuracy, top-1 agreement with the PyTorch net, latency with the noise
floor, size, runtime version) and for the int8 ones the agreement with the float32 artifact and
the speed-up over it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from directnas.compression.state import State
from directnas import runtimes
from directnas.deploy.export import (_readme, _test_images, artifact_logits, parity,
                                     time_artifacts)
from directnas.deploy.int8 import describe, installed, quantizer, runtime_name, write_int8
from directnas.errors import UserError
from directnas.utils.fileio import write_json, write_text
from directnas.models.classifier import Classifier

log = logging.getLogger(__name__)


def deployed_net(state: State) -> nn.Module:
    """The compressed net behind the normalisation it was trained with (pixels in [0, 1])."""
    mean = state.file.mean or state.data.mean
    std = state.file.std or state.data.std
    return Classifier(state.net, mean, std).eval().float().cpu()


def calib_images(state: State, n: int) -> torch.Tensor:
    """``n`` training images (a fixed random draw) as floats in [0, 1]."""
    train = state.data.train
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n]
    return (train.take(idx).float() / 255.0).contiguous()


def available(formats: list[str], say: Any = print) -> list[str]:
    keep = []
    for fmt in formats:
        if installed(fmt):
            keep.append(fmt)
        else:
            say(f"warning: int8 {fmt} skipped: {runtime_name(fmt)} is not installed")
    if not keep:
        raise UserError(f"int8: none of the runtimes of {', '.join(formats)} is installed: "
                        "pip install \"directnas[runtimes]\"")
    return keep


def _record(fmt: str, path: Path, logits: np.ndarray, ref: np.ndarray, labels: np.ndarray,
            data_name: str, shape: tuple[int, ...]) -> dict[str, Any]:
    rt = runtimes.by_format(fmt)
    return {"format": fmt, "path": str(path.resolve()), "runtime_version": rt.version(),
            "input": f"float32 (N, {shape[1]}, {shape[2]}, {shape[3]}) pixel values in [0, 1]",
            "output": "logits", "test_images": int(len(labels)), "data": data_name,
            "size_bytes": rt.size(path), **parity(ref, logits, labels)}


def _write_int8(fmt: str, net: nn.Module, shape: tuple[int, ...], calib: torch.Tensor,
                out: Path, threads: int, state: State) -> tuple[Path, dict[str, Any]]:
    """Write ``model_int8.<ext>``; with several layouts (onnx) make each and keep the faster."""
    layouts = quantizer(fmt).layouts
    if len(layouts) < 2:
        return write_int8(fmt, net, shape, calib, out / "model_int8"), describe(fmt)
    path = out / f"model_int8{runtimes.by_format(fmt).suffix}"
    tries = {lay: write_int8(fmt, net, shape, calib, out / f".model_int8_{lay}", lay)
             for lay in layouts}
    t = time_artifacts(fmt, tries, shape, threads=threads, rounds=3,
                       repeats=state.cfg.latency_repeats, warmup=state.cfg.latency_warmup)
    best = min(tries, key=lambda lay: t[lay]["latency_ms"])
    tries[best].replace(path)
    for p in tries.values():
        p.unlink(missing_ok=True)
    return path, {**describe(fmt, best), "onnx_layout": best,
                  "layout_latency_ms": {lay: t[lay]["latency_ms"] for lay in tries}}


def export_format(fmt: str, state: State, net: nn.Module, calib: torch.Tensor,
                  test: tuple[torch.Tensor, np.ndarray, np.ndarray, str]) -> dict[str, Any]:
    """fp32 and int8 artifacts of ``fmt``: their records (key ``fmt`` and ``fmt-int8``)."""
    cfg, out = state.cfg, state.out
    images, labels, ref, data_name = test
    shape = (cfg.int8_batch, *state.input_shape)
    fpath = runtimes.by_format(fmt).export(net, shape, out / "model_fp32")
    qpath, how = _write_int8(fmt, net, shape, calib, out, cfg.threads, state)
    flog = artifact_logits(fmt, fpath, images, cfg.threads, cfg.int8_batch)
    qlog = artifact_logits(fmt, qpath, images, cfg.threads, cfg.int8_batch)
    rec = {fmt: _record(fmt, fpath, flog, ref, labels, data_name, shape),
           f"{fmt}-int8": {**_record(fmt, qpath, qlog, ref, labels, data_name, shape), **how,
                           "top1_agreement_with_fp32": float(np.mean(flog.argmax(1)
                                                                     == qlog.argmax(1)))}}
    t = time_artifacts(fmt, {fmt: fpath, f"{fmt}-int8": qpath}, shape, threads=cfg.threads,
                       rounds=cfg.latency_rounds, repeats=cfg.latency_repeats,
                       warmup=cfg.latency_warmup, reference=reference_net(state))
    for k in rec:
        rec[k].update(t[k])
    q = rec[f"{fmt}-int8"]
    q["speedup"] = rec[fmt]["latency_ms"] / q["latency_ms"]
    q["accuracy_drop"] = rec[fmt]["accuracy"] - q["accuracy"]
    q["size_ratio"] = rec[fmt]["size_bytes"] / q["size_bytes"]
    return rec


def reference_net(state: State) -> nn.Module | None:
    """The space's drift reference for the timing rounds (nets of a search space only)."""
    if not state.file.arch:
        return None
    from directnas.latency.measure import reference_arch
    from directnas.space.arch import Arch

    return reference_arch(Arch.from_dict(state.file.arch).space).build()


def run(state: State) -> None:
    cfg = state.cfg
    formats = available(list(cfg.int8_formats))
    net = deployed_net(state)
    calib = calib_images(state, cfg.calib_images)
    images, labels, data_name = _test_images(state.data, state.input_shape, None)
    with torch.inference_mode():
        ref = torch.cat([net(images[i:i + 500]) for i in range(0, len(images), 500)]).numpy()
    artifacts: dict[str, Any] = {}
    for fmt in formats:
        artifacts.update(export_format(fmt, state, net, calib, (images, labels, ref, data_name)))
        q = artifacts[f"{fmt}-int8"]
        log.info("int8 %s: accuracy %.4f -> %.4f, %.3f -> %.3f ms (%.2fx)", fmt,
                 artifacts[fmt]["accuracy"], q["accuracy"], artifacts[fmt]["latency_ms"],
                 q["latency_ms"], q["speedup"])
    summary = {"model": state.file.name, "batch_size": cfg.int8_batch,
               "threads": cfg.threads,
               "calib_images": int(len(calib)), "formats": formats, "artifacts": artifacts}
    write_json(state.out / "export.json", summary)
    write_text(state.out / "README.md", _readme(artifacts, state.input_shape, cfg.int8_batch))
    state.deployed = {"format": formats[0], **artifacts[f"{formats[0]}-int8"],
                      "fp32": artifacts[formats[0]]}
    state.report["int8"] = summary


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per format: fp32 -> int8 accuracy, latency and size in its runtime."""
    arts = report["artifacts"]
    lines = []
    for fmt in report["formats"]:
        f, q = arts[fmt], arts[f"{fmt}-int8"]
        lines.append(f"int8 {fmt} ({runtimes.by_format(fmt).name}, {q['runtime_version']}): "
                     f"accuracy {100 * f['accuracy']:.2f} -> {100 * q['accuracy']:.2f} %, latency "
                     f"{f['latency_ms']:.3f} -> {q['latency_ms']:.3f} ms at batch "
                     f"{q['latency_batch_size']} ({q['speedup']:.2f}x, noise "
                     f"floor {100 * q['noise_floor']:.1f} %), {f['size_bytes']} -> {q['size_bytes']} "
                     f"bytes, agreement with fp32 {100 * q['top1_agreement_with_fp32']:.2f} %"
                     + (f", {q['onnx_layout']}" if "onnx_layout" in q else ""))
    return lines

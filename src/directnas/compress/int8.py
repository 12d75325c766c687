"""Real int8 inference: export to ONNX, quantize statically with onnxruntime (per-channel int8
weights, uint8 activations calibrated on training images), check both models with onnxruntime
and measure their accuracy and latency."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from directnas.compress.finetune import eval_batches
from directnas.compress.state import State
from directnas.hardware.profile import Protocol, summarize, time_runner

log = logging.getLogger(__name__)


def export_onnx(net: nn.Module, input_shape: tuple[int, int, int], path: Path) -> None:
    net = net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, *input_shape),), str(path), dynamo=False,
                          input_names=["input"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def session(path: Path, threads: int):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def quantize_int8(float_path: Path, int8_path: Path, calib: np.ndarray) -> None:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                         quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": calib[i:i + 32]} for i in range(0, len(calib), 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    prep = int8_path.with_name(f".{int8_path.stem}.prep.onnx")
    quant_pre_process(str(float_path), str(prep))
    quantize_static(str(prep), str(int8_path), Reader(), quant_format=QuantFormat.QOperator,
                    per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8)
    prep.unlink(missing_ok=True)


def ort_logits(sess, x: np.ndarray) -> np.ndarray:  # noqa: ANN001
    return sess.run(None, {"input": x})[0]


def ort_accuracy(sess, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:  # noqa: ANN001
    correct = total = 0
    for x, y in batches:
        correct += int((ort_logits(sess, x.numpy()).argmax(1) == y.numpy()).sum())
        total += int(y.numel())
    return correct / max(total, 1)


def ort_latency(sess, input_shape: tuple[int, int, int], proto: Protocol) -> float:  # noqa: ANN001
    x = np.random.default_rng(0).standard_normal((proto.batch_size, *input_shape)).astype(np.float32)
    return summarize(time_runner(lambda: ort_logits(sess, x), proto))["ms"]


def run(state: State) -> None:
    cfg = state.cfg
    fpath, qpath = state.out / "model_float.onnx", state.out / "model_int8.onnx"
    export_onnx(state.net, state.input_shape, fpath)
    calib = state.calib_batch(cfg.calib_images)
    fsess = session(fpath, cfg.threads)
    with torch.no_grad():
        ref = state.net.eval()(calib[:64]).numpy()
    err = float(np.abs(ort_logits(fsess, calib[:64].numpy()) - ref).max())
    if err > 1e-3 * max(1.0, float(np.abs(ref).max())):
        raise RuntimeError(f"float ONNX export differs from torch by {err:.3g}")
    quantize_int8(fpath, qpath, calib.numpy())
    qsess = session(qpath, cfg.threads)
    agree = float((ort_logits(qsess, calib.numpy()).argmax(1)
                   == ort_logits(fsess, calib.numpy()).argmax(1)).mean())
    test = list(eval_batches(state.data))
    proto = Protocol(threads=cfg.threads, warmup=cfg.latency_warmup, repeats=cfg.latency_repeats)
    state.deployed = {
        "float_onnx": fpath.name, "int8_onnx": qpath.name,
        "float_onnx_max_abs_error_vs_torch": err,
        "int8_agreement_with_float": agree,
        "float_onnx_accuracy": ort_accuracy(fsess, test),
        "int8_accuracy": ort_accuracy(qsess, test),
        "float_onnx_bytes": fpath.stat().st_size, "int8_onnx_bytes": qpath.stat().st_size,
        "float_onnx_latency_ms": ort_latency(fsess, state.input_shape, proto),
        "int8_latency_ms": ort_latency(qsess, state.input_shape, proto),
    }
    log.info("int8: %s", state.deployed)
    state.report["int8"] = state.deployed

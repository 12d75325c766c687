"""Run a chain of compression methods on a trained net and measure before / after.

Outputs in the run folder: ``model.pt`` (decoded net, loadable like a trained one), ``model.dnz``
(the encoded file whose size is reported), ``metrics.json``, ``layers.json`` and whatever the
methods write (``sensitivity.png``; int8: the fp32 and int8 artifacts and
``export.json``)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import torch

from directnas.compression import fixed_point, int8, lowrank, prune, recipe, share, ternary
from directnas.compression.codec import Encoded, decode_state, encode_state
from directnas.compression.finetune import accuracy, layer_kind, eval_batches, weight_layers
from directnas.compression.state import CompressConfig, State
from directnas.errors import UserError
from directnas.models.model_file import ModelFile
from directnas.utils.fileio import write_bytes, write_json
from directnas.utils.seeding import seed_everything

log = logging.getLogger(__name__)


# the figures of each int8 / fp32 artifact copied to metrics.json["int8"] (all in export.json)
INT8_KEYS = ("path", "accuracy", "top1_agreement", "top1_agreement_with_fp32", "latency_ms",
             "noise_floor", "speedup", "accuracy_drop", "size_bytes", "runtime_version",
             "latency_backend", "onnx_layout")


def _huffman(state: State) -> None:
    state.huffman = True


METHODS: dict[str, Callable[[State], None]] = {
    "prune": prune.run, "share": share.run, "huffman": _huffman, "fixed-point": fixed_point.run,
    "lowrank": lowrank.run, "ternary": ternary.run, "int8": int8.run,
}


def parse_methods(spec: str) -> list[str]:
    methods = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise UserError(f"unknown method(s) {bad or spec!r}: use a comma list of {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise UserError(f"method list {spec!r} repeats a method: give each once")
    if "int8" in methods[:-1]:
        raise UserError("int8 exports the final artifacts: put it last in --method")
    return methods


def _encode(state: State) -> Encoded:
    return encode_state(state.net.state_dict(), huffman=state.huffman, gap_bits=state.cfg.gap_bits,
                        fixed=state.fixed)


def layer_table(state: State, enc: Encoded) -> list[dict[str, Any]]:
    rows = []
    for name, m in weight_layers(state.net):
        w = m.weight.detach()
        params = [f"{name}.weight"] + ([f"{name}.bias"] if m.bias is not None else [])
        nbytes = sum(enc.tensor_bytes.get(p, 0) for p in params)
        dense = 4 * sum(int(getattr(m, p.rsplit(".", 1)[1]).numel()) for p in params)
        rows.append({"layer": name, "type": layer_kind(m), "shape": list(w.shape),
                     "params": int(w.numel()), "nonzero": int((w != 0).sum()),
                     "density": float((w != 0).float().mean()),
                     "unique_values": int(torch.unique(w).numel()),
                     "encoding": enc.layouts.get(f"{name}.weight", ""),
                     "bytes_float32": dense, "bytes_encoded": nbytes,
                     "compression_ratio": dense / max(nbytes, 1),
                     **{k: v for k, v in state.layers.get(name, {}).items()}})
    return rows


def compress_chain(state: State, methods: list[str]) -> tuple[dict[str, Any], ModelFile]:
    """Apply ``methods`` in order to ``state.net``; write outputs; return the metrics and the
    compressed net's model file.  Seeds the process's RNGs with the fine-tuning seed first
    (every retraining's dropout draws)."""
    cfg, out = state.cfg, state.out
    seed_everything(cfg.finetune.seed)
    out.mkdir(parents=True, exist_ok=True)
    test = list(eval_batches(state.data))
    acc_before = accuracy(state.net, test)
    size_before = len(encode_state(state.net.state_dict(), dense_only=True).data)
    lat_before = state.latency_ms()
    log.info("before: accuracy %.4f, %d bytes, %.3f ms", acc_before, size_before, lat_before)
    timings = {}
    if cfg.target_ratio is not None or cfg.max_loss is not None:
        t0 = time.perf_counter()
        r = recipe.search_recipe(state, methods, target_ratio=cfg.target_ratio,
                                 max_loss=cfg.max_loss)
        cfg = state.cfg = replace(cfg, layer_sparsity=r.sparsity if "prune" in methods else None,
                                  layer_bits=r.bits if "share" in methods else None)
        state.report["recipe"] = r.to_json()
        timings["recipe"] = time.perf_counter() - t0
    for name in methods:
        t0 = time.perf_counter()
        log.info("method %s", name)
        METHODS[name](state)
        timings[name] = time.perf_counter() - t0
    state.net.eval()
    enc = _encode(state)
    write_bytes(out / "model.dnz", enc.data)
    decoded = decode_state((out / "model.dnz").read_bytes())
    sd = state.net.state_dict()
    if set(decoded) != set(sd) or not all(torch.equal(decoded[k], sd[k]) for k in sd):
        raise RuntimeError("model.dnz does not decode to the compressed weights")
    compressed = replace(state.file, state_dict={k: v.detach().cpu() for k, v in sd.items()},
                         compression={"methods": methods, "structure": state.structure,
                                      "source": state.file.name})
    compressed.save(out / "model.pt")
    metrics: dict[str, Any] = {
        "model": state.file.name, "methods": methods,
        "accuracy_before": acc_before, "accuracy_after": accuracy(state.net, test),
        "size_bytes_before": size_before, "size_bytes_after": (out / "model.dnz").stat().st_size,
        "latency_ms_before": lat_before,
        "latency_ms_after": state.latency_ms(),
        "latency_backend": "torch-cpu", "latency_threads": cfg.threads, "latency_batch_size": 1,
        "compressed_file": "model.dnz", "huffman": state.huffman,
    }
    if state.deployed is not None:  # int8: the deployed model is the int8 artifact
        d = state.deployed
        metrics.update({"torch_accuracy_after": metrics["accuracy_after"],
                        "torch_latency_ms_before": lat_before,
                        "torch_latency_ms_after": metrics["latency_ms_after"],
                        "accuracy_fp32_artifact": d["fp32"]["accuracy"],
                        "accuracy_after": d["accuracy"], "size_bytes_after": d["size_bytes"],
                        "latency_ms_before": d["fp32"]["latency_ms"],
                        "latency_ms_after": d["latency_ms"], "noise_floor": d["noise_floor"],
                        "latency_backend": d["latency_backend"],
                        "latency_threads": d["latency_threads"],
                        "compressed_file": Path(d["path"]).name,
                        "int8": {k: {f: r[f] for f in INT8_KEYS if f in r}
                                 for k, r in state.report["int8"]["artifacts"].items()}})
    metrics["compression_ratio"] = metrics["size_bytes_before"] / metrics["size_bytes_after"]
    metrics["accuracy_drop"] = metrics["accuracy_before"] - metrics["accuracy_after"]
    metrics["speedup"] = metrics["latency_ms_before"] / metrics["latency_ms_after"]
    metrics["recipe"] = chosen_recipe(cfg, methods)
    if cfg.target_ratio is not None:
        metrics["target_ratio_met"] = metrics["compression_ratio"] >= cfg.target_ratio
    if cfg.max_loss is not None:
        metrics["max_loss_met"] = metrics["accuracy_drop"] <= cfg.max_loss + 1e-9
    metrics["method_seconds"] = timings
    metrics["methods_report"] = state.report
    write_json(out / "metrics.json", metrics)
    write_json(out / "layers.json", layer_table(state, enc))
    return metrics, compressed


def chosen_recipe(cfg: CompressConfig, methods: list[str]) -> dict[str, Any]:
    """The settings the chain ran with (searched or given), as saved in metrics.json."""
    keys = ("target_ratio", "max_loss", "sparsity", "allocation", "uniform", "prune_steps",
            "bits_conv", "bits_fc", "gap_bits", "layer_sparsity", "layer_bits")
    return {"methods": methods, **{k: getattr(cfg, k) for k in keys},
            "finetune": asdict(cfg.finetune)}

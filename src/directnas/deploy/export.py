"""Export a trained net to deployment artifacts, check them, and time them in their runtime.

Every artifact takes a float32 tensor (N, C, H, W) of pixel values in [0, 1] (uint8 / 255) and
returns the logits: the normalisation the net was trained with is folded in
(``models.classifier.Classifier``).  For each artifact ``export.json`` records the parity with
PyTorch on the real test set (``top1_agreement``, ``max_abs_diff``, both accuracies) and its
latency in its own runtime (interleaved rounds with a drift reference, ``noise_floor`` beside
it).  The runtime of each format (how to write, run and time its artifact) is the registry's
(``directnas.runtimes``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from directnas import runtimes
from directnas.errors import UserError
from directnas.models.model_file import ModelFile
from directnas.runtimes.common import as_numpy
from directnas.utils.fileio import read_json, write_json, write_text
from directnas.utils.threads import torch_threads

log = logging.getLogger(__name__)


def parse_formats(text: str) -> list[str]:
    """``--format``: ``all`` or a comma list of the registered artifact formats."""
    known = runtimes.formats()
    fmts = list(known) if text == "all" else [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in fmts if f not in known]
    if bad or not fmts:
        raise UserError(f"unknown export format {', '.join(bad) or text!r}: use "
                        f"{'|'.join(known)} or all")
    return fmts


def artifact_logits(fmt: str, path: Path, images: torch.Tensor, threads: int = 1,
                    batch: int = 1) -> np.ndarray:
    """Logits of the artifact on ``images`` (N, C, H, W) floats in [0, 1]; ``batch``: the fixed
    batch a fixed-batch artifact (pte, openvino) was exported with (the last chunk is padded
    with zeros).  Torch runs with ``threads`` intra-op threads (restored after)."""
    with torch_threads(threads):
        return _artifact_logits(fmt, path, images, threads, batch)


def _artifact_logits(fmt: str, path: Path, images: torch.Tensor, threads: int,
                     batch: int) -> np.ndarray:
    rt = runtimes.by_format(fmt)
    if rt.any_batch:
        outs = []
        for i in range(0, len(images), 500):
            x = images[i:i + 500].contiguous()
            outs.append(as_numpy(rt.load(path, x, threads)()).copy())
        return np.concatenate(outs)
    x = torch.zeros(batch, *images.shape[1:])
    run = rt.load(path, x, threads)  # reads x in place on every call
    rows = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        x.zero_()
        x[:len(chunk)].copy_(chunk)
        rows.append(as_numpy(run()).reshape(batch, -1)[:len(chunk)].copy())
    return np.concatenate(rows)


def parity(torch_logits: np.ndarray, art_logits: np.ndarray, labels: np.ndarray
           ) -> dict[str, float]:
    a, b = torch_logits.argmax(1), art_logits.argmax(1)
    return {"top1_agreement": float(np.mean(a == b)),
            "max_abs_diff": float(np.max(np.abs(torch_logits - art_logits))),
            "torch_accuracy": float(np.mean(a == labels)),
            "accuracy": float(np.mean(b == labels))}


def time_artifact(fmt: str, path: Path, shape: tuple[int, ...], *, threads: int = 1,
                  rounds: int = 5, repeats: int = 30, warmup: int = 10,
                  reference: nn.Module | None = None) -> dict[str, Any]:
    """The artifact's batch latency in its runtime: ``rounds`` interleaved rounds (p10 of
    ``repeats`` calls each, the fastest round: ``Protocol.across``) beside ``reference`` (a
    fixed net in the same
    runtime) whose round spread is the noise floor."""
    return time_artifacts(fmt, {"artifact": path}, shape, threads=threads, rounds=rounds,
                          repeats=repeats, warmup=warmup, reference=reference)["artifact"]


def time_artifacts(fmt: str, paths: dict[str, Path], shape: tuple[int, ...], *,
                   threads: int = 1, rounds: int = 5, repeats: int = 30, warmup: int = 10,
                   reference: nn.Module | None = None) -> dict[str, dict[str, Any]]:
    """``time_artifact`` for several artifacts of one format, timed interleaved in the same
    rounds (so that they are compared under the same drift); ``name: figures``.  Without a
    reference the noise floor is each artifact's own relative round spread."""
    from directnas.latency.measure import NOISE, REFERENCE, measure_interleaved

    rt = runtimes.by_format(fmt)
    proto = runtimes.Protocol(batch_size=shape[0], threads=threads, warmup=warmup,
                              repeats=repeats, stat="p10", rounds=rounds)
    runners = {name: rt.load(path, torch.rand(*shape), threads) for name, path in paths.items()}
    if reference is not None:
        runners[REFERENCE] = rt.runner(reference, shape, proto)
    m = measure_interleaved(runners, proto, rounds=max(2, rounds))
    out = {}
    for name in paths:
        r = {"latency_ms": m[name]["ms"], "latency_spread_ms": m[name]["spread_ms"],
             "latency_backend": rt.name, "latency_threads": threads,
             "latency_batch_size": shape[0], "latency_rounds": max(2, rounds)}
        if NOISE in m:
            r["noise_floor"] = m[NOISE]["noise_floor"]
            r["reference_ms"] = m[NOISE]["ms"]
        else:
            r["noise_floor"] = m[name]["spread_ms"] / m[name]["ms"]
        out[name] = r
    return out


def _test_images(data: Any, shape: tuple[int, int, int], limit: int | None
                 ) -> tuple[torch.Tensor, np.ndarray, str]:
    from directnas.data.datasets import Dataset
    from directnas.data.readers import load_dataset

    ds = data if isinstance(data, Dataset) else load_dataset(data, size=shape[1])
    imgs, labels = ds.test.images, ds.test.labels
    if limit:
        imgs, labels = imgs[:limit], labels[:limit]
    x = imgs.float() / 255.0
    if tuple(x.shape[1:]) != tuple(shape):
        if x.shape[1] != shape[0]:
            raise UserError(f"dataset {data} has {x.shape[1]} channels but the model takes "
                            f"{shape[0]}: pass the --data it was trained on")
        x = torch.nn.functional.interpolate(x, size=shape[1:], mode="bilinear",
                                            align_corners=False)
    return x.contiguous(), labels.numpy(), ds.name


def model_data(model_dir: Path) -> str:
    """The dataset a trained net's ``train_config.json`` names, as ``--data`` takes it.  Data
    given in memory (``directnas run``, the library) is recorded as ``Type:name``: its name is
    used when it is the embedded ``fashion-mnist``, otherwise the user must say where it is."""
    cfg = model_dir / "train_config.json"
    data = str(read_json(cfg).get("data") or "fashion-mnist") if cfg.is_file() else "fashion-mnist"
    kind, sep, name = data.partition(":")
    if sep and kind and not Path(data).exists() and "/" not in kind:
        if name in ("fashion-mnist", "fashion_mnist"):
            return "fashion-mnist"
        raise UserError(f"{model_dir} was trained on data given in memory ({data}): pass its test "
                        "data with --data DIR")
    return data


def export(model: ModelFile, out: str | Path, *, data: Any, formats: Sequence[str] | str = "all",
           net: nn.Module | None = None, threads: int = 1, rounds: int = 5, batch_size: int = 1,
           limit: int | None = None, name: str = "model", source: str | None = None,
           progress: Callable[[Iterable], Iterable] = lambda it: it) -> dict[str, Any]:
    """Export the net of the model file ``model`` (``net``: that net as a ``Classifier``, by
    default rebuilt from the file) to ``out`` in ``formats``, checked against it on ``data``'s
    test split; returns (and writes to ``out/export.json``) the figures of every artifact.
    ``source``: what export.json names as the model (default: its name)."""
    fmts = parse_formats(formats) if isinstance(formats, str) else list(formats)
    fmts = [parse_formats(f)[0] for f in fmts]
    net = net if net is not None else model.classifier()
    shape = tuple(int(v) for v in model.input_shape)
    images, labels, data_name = _test_images(data, shape, limit)  # type: ignore[arg-type]
    with torch.inference_mode():
        ref_logits = torch.cat([net(images[i:i + 500]) for i in range(0, len(images), 500)]).numpy()
    reference = None
    if model.arch:
        from directnas.latency.measure import reference_arch
        from directnas.space.arch import Arch

        reference = reference_arch(Arch.from_dict(model.arch).space).build()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for fmt in progress(fmts):
        rt = runtimes.by_format(fmt)
        t0 = time.perf_counter()
        path = rt.export(net, (batch_size, *shape), out / name)
        export_s = time.perf_counter() - t0
        logits = artifact_logits(fmt, path, images, threads, batch_size)
        res = {"format": fmt, "path": str(path.resolve()), "runtime_version": rt.version(),
               "input": f"float32 (N, {shape[0]}, {shape[1]}, {shape[2]}) pixel values in [0, 1]",
               "output": "logits", "test_images": int(len(images)), "data": data_name,
               "size_bytes": rt.size(path),
               "export_s": export_s, **parity(ref_logits, logits, labels),
               **time_artifact(fmt, path, (batch_size, *shape), threads=threads, rounds=rounds,
                               reference=reference)}
        results[fmt] = res
        log.info("%s: agreement %.4f, latency %.3f ms", fmt, res["top1_agreement"],
                 res["latency_ms"])
    summary = {"model": source or model.name, "batch_size": batch_size, "threads": threads,
               "artifacts": results}
    if len(results) == 1:
        summary.update(next(iter(results.values())))
    write_json(out / "export.json", summary)
    write_text(out / "README.md", _readme(results, shape, batch_size))
    return summary


def _readme(results: dict[str, Any], shape: tuple[int, ...], batch: int) -> str:
    """The README of an export folder (``results``: any key -> an artifact's record)."""
    fixed = [f for f in runtimes.formats() if not runtimes.by_format(f).any_batch]
    any_n = [f for f in runtimes.formats() if runtimes.by_format(f).any_batch]
    lines = ["# Exported model", "",
             f"Input: a float32 tensor (N, {shape[0]}, {shape[1]}, {shape[2]}) of pixel values in "
             "[0, 1] (uint8 / 255); the normalisation the net was trained with is inside the "
             "artifact. Output: the logits (N, classes); `argmax(1)` is the class.",
             f"Fixed-shape artifacts ({', '.join(fixed)}) take N = {batch}; {_and(any_n)} "
             "take any N. None of them needs directnas.", ""]
    lines.append("| artifact | runtime | top-1 agreement with PyTorch | max abs logit diff | "
                 "accuracy | latency (batch, threads) | noise floor |")
    lines.append("|---|---|---|---|---|---|---|")
    for fmt, r in results.items():
        lines.append(f"| {Path(r['path']).name} | {r['runtime_version']} | "
                     f"{100 * r['top1_agreement']:.2f} % | {r['max_abs_diff']:.2e} | "
                     f"{100 * r['accuracy']:.2f} % | {r['latency_ms']:.3f} ms "
                     f"({r['latency_batch_size']}, {r['latency_threads']}) | "
                     f"{100 * r['noise_floor']:.1f} % |")
    for fmt, r in results.items():
        lines += ["", f"## {fmt}", "", "```python",
                  runtimes.by_format(r["format"]).usage.format(
                      name=Path(r["path"]).name, shape=", ".join(str(v) for v in (batch, *shape))),
                  "```"]
    return "\n".join(lines) + "\n"


def _and(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(filter(None, [", ".join(words[:-1]), words[-1]])) if words else ""

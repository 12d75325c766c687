"""The compression stage as a library call: ``compress(model, data, out=...)`` runs a chain of
methods (prune, share, huffman, fixed-point, lowrank, ternary, int8) on a trained net, measures
it before and after, optionally exports the result, and returns a ``CompressResult``."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from directnas.compression.finetune import Progress
from directnas.compression.options import compress_config
from directnas.compression.pipeline import compress_chain, parse_methods
from directnas.compression.state import State
from directnas.compression.summary import artifact_lines, summary_lines
from directnas.data.datasets import Dataset
from directnas.data.sources import DataLike, as_dataset
from directnas.deploy.export import export as export_artifacts, parse_formats
from directnas.errors import UserError
from directnas.models.model_file import ModelFile
from directnas.pipeline.checks import check_entry
from directnas.pipeline.export import ModelLike, parity_data, source_of, source_path
from directnas.pipeline.outdir import claimed
from directnas.utils.fileio import read_json, write_json
from directnas.utils.seeding import check_seed
from directnas.utils.threads import torch_threads

log = logging.getLogger(__name__)
# the figures of each artifact of the compressed net kept in metrics.json["export"]
EXPORT_KEYS = ("format", "path", "runtime_version", "latency_ms", "noise_floor", "top1_agreement",
               "max_abs_diff", "accuracy", "size_bytes", "latency_batch_size", "latency_threads")


@dataclass
class CompressResult:
    out: Path                       # metrics.json, layers.json, model.pt, the encoded file
    metrics: dict[str, Any]         # metrics.json: accuracy, size and latency before and after
    file: ModelFile                 # the compressed net (decoded weights), as out/model.pt holds it

    @property
    def ratio(self) -> float:
        """Size before / size after (the encoded file, or the int8 artifact)."""
        return float(self.metrics["compression_ratio"])

    @property
    def compressed_path(self) -> Path:
        return self.out / self.metrics["compressed_file"]


def compress(model: ModelLike, data: DataLike | None, *, out: str | Path,
             method: str = "prune,share,huffman", max_loss: float | None = None,
             target_ratio: float | None = None, test: DataLike | None = None, quick: bool = False,
             seed: int | None = None, threads: int | None = None, export: str | None = None,
             finetune: Mapping[str, Any] | None = None, progress: Progress = lambda it, d, n: it,
             say: Callable[[str], None] = log.info, force: bool = False,
             **options: Any) -> CompressResult:
    """Compress ``model`` (a model.pt, its folder, a run folder, a ``TrainResult`` or a
    ``ModelFile``) with ``method`` (a comma chain) into ``out``; retrain on ``data`` (None: what
    it trained on, read at the net's input size), score on its test split (or ``test``).
    ``target_ratio`` (e.g. 40) / ``max_loss`` (accuracy points, e.g. 1) search a per-layer
    recipe; ``finetune``: ``FinetuneConfig`` fields; ``options``: ``CompressConfig`` fields
    (``sparsity``, ``bits_conv``, ...); ``export``: formats to export the compressed net to
    (into ``out/export``).  ``say`` gets the summary, line by line.
    Every input is checked before any work; ``out`` must not hold the model and must be new,
    empty or a compression folder (``force``: any folder that is no other command's)."""
    methods = parse_methods(method)
    if export and "int8" in methods:
        raise UserError("--method int8 writes its own artifacts (--int8-formats): drop --export")
    formats = parse_formats(export) if export else None  # fails before compressing, not after
    src = source_of(model)
    cfg = compress_config(src.file.recipe, max_loss=max_loss, target_ratio=target_ratio,
                          quick=quick, seed=seed, threads=threads, finetune=finetune, **options)
    check_seed(cfg.finetune.seed)
    check_entry("compress", out=out, force=force, inputs=[source_path(model)])
    # an image folder is read at the net's own input size (a photo net's folder holds larger
    # images, and unequal ones); a dataset of another size or channel count is still refused
    data = parity_data(data, src) if data is None else data  # None: what it trained on
    dataset = as_dataset(data, test, size=int(src.file.input_shape[-1]))
    if tuple(src.file.input_shape) != dataset.input_shape:
        raise UserError(f"the model takes {tuple(src.file.input_shape)} images but "
                        f"{_label(data)} has {dataset.input_shape}: use the dataset it was "
                        "trained on")
    out = Path(out)
    with claimed(out, "compress"):
        write_json(out / "compress_config.json", {**asdict(cfg), "methods": methods,
                                                  "model": _label(model), "data": _label(data)})
        state = State(net=src.net(), file=src.file, data=dataset, cfg=cfg, out=out,
                      progress=progress)
        with torch_threads(cfg.threads):  # fine-tuning and latency alike
            metrics, compressed = compress_chain(state, methods)
        for line in summary_lines(metrics, read_json(out / "layers.json")):
            say(line)
        if formats:
            metrics = _export(out, compressed, formats, dataset, say)
    return CompressResult(out, metrics, compressed)


def _label(given: Any) -> str:
    """How compress_config.json names the model or data given: a path as given, else its type."""
    if isinstance(given, (str, Path)):
        return str(given)
    return f"Dataset:{given.name}" if isinstance(given, Dataset) else type(given).__name__


def _export(out: Path, compressed: ModelFile, formats: list[str], dataset: Dataset,
            say: Callable[[str], None]) -> dict[str, Any]:
    """The compressed net (dense weights) exported into ``out/export``; its figures go into
    ``out/metrics.json`` under ``export``."""
    s = export_artifacts(compressed, out / "export", data=dataset, formats=formats,
                         source=str((out / "model.pt").resolve()))
    figures = {fmt: {k: r[k] for k in EXPORT_KEYS if k in r} for fmt, r in s["artifacts"].items()}
    m = read_json(out / "metrics.json")
    m["export"] = figures
    write_json(out / "metrics.json", m)
    for line in artifact_lines(figures):
        say(line)
    return m


def compress_stage(folder: Path, trained: ModelLike, data: Dataset, *,
                   options: Mapping[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    """The run's compression stage in ``folder``: ``compress(trained, data, **options)``, skipped
    when ``folder/metrics.json`` holds an export (a finished stage); returns metrics.json."""
    done = folder / "metrics.json"
    if done.exists() and "export" in read_json(done):
        say(f"compress: done, reusing {done}")
        return read_json(done)
    return compress(trained, data, out=folder, say=say, **options).metrics

"""The export stage as a library call: ``export(model, out)`` writes a trained net as deployment
artifacts (pte, onnx, openvino, torchscript), each checked against PyTorch on the test set and
timed in its own runtime; and the run's export and target-check stages."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from torch import nn

from directnas.data.datasets import Dataset
from directnas.data.sources import DataLike, as_dataset
from directnas import runtimes
from directnas.deploy.export import export as export_artifacts, model_data, parse_formats
from directnas.errors import UserError
from directnas.latency.cache import make_protocol
from directnas.latency.near_target import NearTarget
from directnas.models.model_file import ModelFile
from directnas.pipeline.checks import check_count, check_entry
from directnas.pipeline.outdir import claimed
from directnas.pipeline.runfolder import RunFolder
from directnas.pipeline.train import TrainResult
from directnas.space.space import SearchSpace
from directnas.utils.fileio import read_json, write_json

log = logging.getLogger(__name__)
ModelLike = str | Path | ModelFile | TrainResult


@dataclass
class ExportResult:
    out: Path                             # export.json, README.md and the artifacts
    artifacts: dict[str, dict[str, Any]]  # format -> path, runtime_version, top1_agreement,
    #                                       max_abs_diff, accuracy, latency_ms, noise_floor, ...

    def path(self, fmt: str) -> Path:
        return Path(self.artifacts[fmt]["path"])


@dataclass
class Source:
    """A trained net to export or compress: its model file, the folder it came from (None in
    memory), how export.json / compress_config.json name it, and the net itself when it cannot
    be rebuilt from the file (a module trained as is)."""

    file: ModelFile
    folder: Path | None
    label: str
    module: nn.Module | None = None

    @property
    def rebuildable(self) -> bool:
        return self.module is None or bool(self.file.arch or self.file.model)

    def classifier(self) -> nn.Module:
        """The net behind its normalisation, on the CPU in float32 and eval mode."""
        if self.rebuildable:
            return self.file.classifier()
        return copy.deepcopy(self.module).cpu().float().eval()  # type: ignore[arg-type]

    def net(self) -> nn.Module:
        """The bare net (no normalisation), on the CPU in float32 and eval mode."""
        if self.rebuildable:
            return self.file.build()
        inner = getattr(self.module, "net", self.module)
        return copy.deepcopy(inner).cpu().float().eval()  # type: ignore[arg-type]


def source_of(model: ModelLike) -> Source:
    """``model`` (a model.pt, its folder, a run folder, a ``TrainResult`` or a ``ModelFile``)."""
    from directnas.models.model_file import find_model_file

    if isinstance(model, TrainResult):
        if model.file is None:
            raise UserError("this TrainResult holds no model file (a rank other than 0): export "
                            "from rank 0 or from its out folder")
        return Source(model.file, model.out, str(model.out or model.file.name), model.model)
    if isinstance(model, ModelFile):
        return Source(model, None, model.name)
    if isinstance(model, (str, Path)):
        path = find_model_file(Path(model))
        return Source(ModelFile.read(path), path.parent, str(path.resolve()))
    raise UserError(f"cannot export a {type(model).__name__}: give a model.pt, its folder, a run "
                    "folder, a TrainResult or a ModelFile")


def source_path(model: ModelLike) -> Path | None:
    """The model.pt behind ``model`` (None when it is only in memory)."""
    from directnas.models.model_file import find_model_file

    if isinstance(model, TrainResult):
        return model.out / "model.pt" if model.out is not None else None
    return find_model_file(Path(model)) if isinstance(model, (str, Path)) else None


def parity_data(data: DataLike | None, source: Source) -> Any:
    """The data a net is checked on: ``data``, or the dataset its folder's train_config.json
    names."""
    if data is None:
        if source.folder is None:
            raise UserError(f"model {source.label} is in memory: pass the data to check it on")
        return model_data(source.folder)
    # images and labels given in memory are the images to check on
    return data if isinstance(data, (str, Path, Dataset)) else as_dataset(data, data)


def export(model: ModelLike, out: str | Path, *, formats: str | Sequence[str] | None = None,
           backend: str | None = None, data: DataLike | None = None, threads: int = 1,
           rounds: int = 5, batch_size: int = 1, limit: int | None = None, name: str = "model",
           progress: Callable[[Iterable], Iterable] = lambda it: it,
           force: bool = False) -> ExportResult:
    """Export ``model`` (a model.pt, its folder, a run folder, a ``TrainResult`` or a
    ``ModelFile``) into ``out`` as ``formats`` (a comma list, a list or ``"all"``; default: the
    artifact of ``backend``'s runtime, or all without a backend).  Each artifact is checked
    against the PyTorch net on the test split of ``data`` (default: what it was trained on) and
    timed in its runtime (``threads``, ``rounds``, at ``batch_size``).  Every input is checked
    before any work; ``out`` must not hold the model and must be new, empty or an export folder
    (``force``: any folder that is no other command's)."""
    if formats is None:
        formats = runtimes.for_backend(backend).format if backend else "all"
    for value, flag in ((threads, "--threads"), (rounds, "--rounds"), (batch_size, "--latency-batch")):
        check_count(value, flag)
    if limit is not None:
        check_count(limit, "--limit", example=1000)
    parse_formats(formats) if isinstance(formats, str) else [parse_formats(f) for f in formats]
    src = source_of(model)
    check_entry("export", out=out, force=force, backend=backend, inputs=[source_path(model)])
    net, parity = src.classifier(), parity_data(data, src)
    with claimed(out, "export"):
        summary = export_artifacts(src.file, out, data=parity, formats=formats, net=net,
                                   threads=threads, rounds=rounds, batch_size=batch_size,
                                   limit=limit, name=name, source=src.label, progress=progress)
    return ExportResult(Path(out), summary["artifacts"])


def export_stage(run: RunFolder, file: ModelFile | None, *, backend: str | None, data: Dataset,
                 threads: int = 1, rounds: int = 5,
                 say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """The run's export stage: the trained net (``file``, or ``run.model`` when None) as the
    artifact of ``backend``'s runtime in ``run.export`` (skipped when export.json is newer than
    the model and of that format); returns export.json."""
    return export_model(run.model, run.export, file, fmt=runtimes.for_backend(backend).format,
                        data=data, threads=threads, rounds=rounds, say=say)


def export_model(model: Path, out: Path, file: ModelFile | None, *, fmt: str, data: Dataset,
                 threads: int = 1, rounds: int = 5, say: Callable[[str], None] = log.info,
                 label: str = "export") -> dict[str, Any]:
    """The net of ``model`` (a model.pt; ``file``: its content when in memory) as a ``fmt``
    artifact in ``out``, checked on ``data``'s test split and timed in its runtime (skipped when
    ``out/export.json`` is newer than the model and of that format); returns export.json.
    ``label`` starts the line said."""
    done = out / "export.json"
    if done.exists() and done.stat().st_mtime >= model.stat().st_mtime:
        r = read_json(done)
        if r.get("format") == fmt:
            say(f"{label}: done, reusing {done}")
            return r
    r = export_artifacts(file or ModelFile.read(model), out, data=data, formats=[fmt],
                         threads=threads, rounds=rounds, source=str(model.resolve()))
    say(f"{label}: {r['path']} ({fmt}, {r['runtime_version']}): {r['latency_ms']:.3f} ms "
        f"(noise floor {100 * r['noise_floor']:.1f} %), top-1 agreement "
        f"{100 * r['top1_agreement']:.2f} %")
    return r


def target_check_stage(folder: Path, space: SearchSpace, exported: Mapping[str, Any],
                       near: NearTarget | None, target_ms: float | None, *,
                       backend: str | None, protocol: Mapping[str, Any],
                       say: Callable[[str], None]) -> dict[str, Any] | None:
    """``folder/target_check.json``: the artifact timed again beside the near-target session's
    nets, and judged against the target at the machine's speed now (``deploy.target_check``).
    None when the table was not re-anchored here or no target was given."""
    from directnas.deploy.target_check import check_target, describe

    if near is None or not target_ms or not near.nets:
        return None
    if runtimes.by_format(exported["format"]).name != (backend or runtimes.DEFAULT):
        say(f"target check: skipped, the {exported['format']} artifact does not run on {backend} "
            "(the nets the target was measured on would be timed elsewhere than the artifact)")
        return None
    path = folder / "target_check.json"
    done = folder / "export.json"
    if path.exists() and done.exists() and path.stat().st_mtime >= done.stat().st_mtime:
        c = read_json(path)
        if c.get("target_ms") == target_ms:
            say(f"target check: done, reusing {path}")
            return c
    say("target check: the artifact timed beside the near-target nets ...")
    c = check_target(exported["format"], exported["path"], space, near, float(target_ms),
                     backend=backend or "torch-cpu", proto=make_protocol(protocol))
    write_json(path, c)
    say("target check: " + describe(c).replace("**", "") + f" ({path})")
    return c

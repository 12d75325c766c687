"""The library: ``profile``, ``search`` and ``train`` as calls from a notebook or a training
script (the CLI's commands are thin adapters over them; ``pipeline.run`` chains them).

Every option is a keyword; options of the search and of training are the fields of
``SearchConfig`` and ``TrainConfig`` (a misspelt one is a ``UserError``, as are bad values).
``data``/``test``: see ``data_sources`` (a dataset name or folder, ``(images, labels)``
tensors, any map-style ``torch.utils.data.Dataset`` of ``(image, label)``).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from directnas.data import Dataset
from directnas.data_sources import DataLike, as_dataset, fit_space, space_summary
from directnas.device import resolve_device
from directnas.distributed import init_from_env
from directnas.errors import UserError
from directnas.fileio import torch_save, write_json
from directnas.hardware.lut import LatencyTable
from directnas.hardware.predictor import predict_arch_ms
from directnas.hardware.profile import Protocol, measure_net, profile_space
from directnas.inference import Classifier
from directnas.models import build_named, model_names
from directnas.options import resolve_config
from directnas.runfolder import check_out_dir, quiet_unless_main, save_resolved
from directnas.search.searcher import (CHECKPOINT, SearchConfig, Searcher, check_config,
                                       check_data_fits)
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace, load_space
from directnas.targets import Target, resolve_target
from directnas.train import (MODEL_RECIPES, RECIPE_KEYS, TRAIN_CHECKPOINT, TrainConfig,
                             check_train_config, count_macs, count_params, load_train_checkpoint,
                             train_net)
from directnas.trainer import Progress, no_progress

log = logging.getLogger(__name__)
SEARCH_QUICK = {"warmup_epochs": 1, "epochs": 1, "max_steps": 30, "valid_size": 1000, "arch_every": 1}
TRAIN_QUICK = {"epochs": 1, "max_steps": 30}
SpaceLike = SearchSpace | str | Path
TableLike = LatencyTable | str | Path


@dataclass
class SearchResult:
    arch: Arch  # the searched architecture (``arch.build()``: an untrained net)
    predicted_latency_ms: float | None  # on the latency table
    target_latency_ms: float | None
    history: list[dict[str, Any]]  # probabilities (and E[LAT]) along the search
    epochs: list[dict[str, float]]  # one row per epoch: losses, E[LAT], wall time
    space: SearchSpace  # the space searched (fitted to the data)
    table: LatencyTable
    supernet_valid_accuracy: float
    out: Path | None = None


@dataclass
class TrainResult:
    model: nn.Module  # eval mode; takes (N, C, H, W) floats in [0, 1] and normalises inside
    metrics: dict[str, Any] = field(default_factory=dict)  # test_accuracy when test data is given
    out: Path | None = None


# ---- latency ---------------------------------------------------------------------------------
def make_protocol(protocol: Mapping[str, Any] | None = None) -> Protocol:
    """``Protocol`` from keywords (``threads``, ``batch_size``, ``repeats``, ``warmup``,
    ``dtype``, ``stat``, ``clock``, ``channels_last``); unknown names and counts < 1 refused."""
    given = {k: v for k, v in (protocol or {}).items() if v is not None}
    names = {f.name for f in fields(Protocol)}
    if set(given) - names:
        raise UserError(f"unknown latency option(s) {sorted(set(given) - names)}; known: {sorted(names)}")
    proto = Protocol(**given)
    for name in ("threads", "batch_size", "repeats"):
        if not isinstance(getattr(proto, name), int) or getattr(proto, name) < 1:
            raise UserError(f"latency option {name} must be an integer >= 1, got {getattr(proto, name)!r}")
    return proto


def get_table(space: SearchSpace, *, table: TableLike | None, backend: str | None,
              proto: Protocol, fitted: bool = False) -> LatencyTable:
    """``table`` (checked: it covers ``space``, was measured on ``backend`` if one is given), or
    this device's cached table, profiled where it lacks ops.  ``fitted``: the space was fitted
    to the data, so a table of this device may lack its stem or classifier; they are measured."""
    from directnas.commands.common import get_table as cached_table  # the table cache

    measure_on = backend or "torch-cpu"
    if table is None:
        return cached_table(space, table_path=None, backend=measure_on, proto=proto, out=None)
    where = str(table) if not isinstance(table, LatencyTable) else "given"
    t = table if isinstance(table, LatencyTable) else LatencyTable.load(table)
    was = t.meta.get("backend")
    if backend is not None and was and was != backend:
        raise UserError(f"latency table {where} was measured on backend {was!r} "
                        f"({t.meta.get('device', 'unknown device')}), not backend {backend!r}: "
                        f"pass a table profiled with backend {backend} or drop the backend")
    miss = t.missing(t.required_keys(space))
    if fitted and miss and set(miss) <= set(space.fixed_keys()) and was == measure_on:
        # a space fitted to the data has another stem or classifier: measure just those
        log.info("latency table %s lacks %d fixed op(s) of the fitted space: measuring them", where, len(miss))
        extra = profile_space(space, backend=measure_on, proto=proto, existing=t)
        t = LatencyTable(dict(t.meta), {**t.entries, **{k: extra.entries[k] for k in miss}})
    t.check_covers(space, path=where)
    return t


def profile(space: SpaceLike, *, backend: str = "torch-cpu", out: str | Path | None = None,
            **protocol: Any) -> LatencyTable:
    """The latency table of every op of ``space`` on ``backend`` (cached per device, protocol
    and space; measured where the cache lacks ops); with ``out`` also saved there as JSON."""
    space = load_space(space) if not isinstance(space, SearchSpace) else space
    table = get_table(space, table=None, backend=backend, proto=make_protocol(protocol))
    if out is not None:
        table.save(out)
    return table


# ---- search ----------------------------------------------------------------------------------
def search(space: SpaceLike, data: DataLike, *, target_latency: Target | None = None,
           backend: str | None = None, table: TableLike | None = None,
           out: str | Path | None = None, quick: bool = False, seed: int | None = 0,
           device: str = "auto", resume: bool = False, input_size: int | None = None,
           config_file: str | Path | None = None, protocol: Mapping[str, Any] | None = None,
           progress: Progress = no_progress,
           on_epoch: Callable[[dict[str, float]], None] | None = None,
           on_step: Callable[[int], None] | None = None, **config: Any) -> SearchResult:
    """ProxylessNAS search of ``space`` (a preset name, a YAML path or a ``SearchSpace``) on
    ``data`` for the latency ``target_latency`` (ms, or a multiple of the fastest net: ``"1.5x"``).

    The space takes the data's number of classes and channels; images are resized to its
    input size (or ``input_size``).  ``table``: a latency table (or its path) instead of this
    device's (profiled with ``protocol`` on ``backend``).  ``out``: a run folder for the
    checkpoints and outputs (None: a temporary one); ``resume`` continues its checkpoint.
    ``config``: ``SearchConfig`` fields (``epochs``, ``lr``, ``strategy``, ...).  Under
    torchrun every rank searches its shard; rank 0 alone writes.
    """
    dev = resolve_device(device)
    dist = init_from_env(dev)
    quiet_unless_main(dist.is_main)
    cfg = resolve_config(SearchConfig, yaml_path=config_file, what="search",
                         overrides={**config, "seed": seed, "device": str(dev)},
                         quick=SEARCH_QUICK if quick else None)
    check_config(cfg)
    proto = make_protocol(protocol)
    space = load_space(space) if not isinstance(space, SearchSpace) else space
    dataset = as_dataset(data, size=input_size or space.input_size)
    given, space = space, fit_space(space, dataset, input_size=input_size)
    check_data_fits(space, dataset)
    if quick and "valid_size" not in config and (cfg.valid_size or 0) * 2 > len(dataset.train):
        cfg.valid_size = None  # the smoke budget's validation split, on small data: 10 %
    with _run_folder(out) as folder:
        dist.run_on_main(lambda: check_out_dir(folder, CHECKPOINT, resume=resume,
                                               what="search checkpoint"))
        if table is None and resume and (folder / "latency.json").exists():
            table = folder / "latency.json"
        lut = dist.run_on_main(lambda: get_table(space, table=table, backend=backend, proto=proto,
                                                 fitted=space != given))
        cfg.target_latency_ms = resolve_target(target_latency, space, lut)
        searcher = Searcher(space, dataset, lut, cfg, folder, dist=dist)
        ck = dist.run_on_main(searcher.load_checkpoint) if resume else None
        if ck is not None and searcher.resume(ck):
            log.info("resumed at epoch %d, step %d", searcher.state.epoch, searcher.state.step)
        # everything is checked: from here on the run folder is written (by rank 0 only)
        if dist.is_main:
            folder.mkdir(parents=True, exist_ok=True)
            lut.save(folder / "latency.json")
            save_resolved(folder, "search_config.json", cfg,
                          {**space_summary(space), "data": _data_name(data, dataset),
                           "backend": backend or "torch-cpu", "world": dist.world})
        t0 = time.perf_counter()
        arch = searcher.run(progress=progress if dist.is_main else no_progress,
                            on_epoch=on_epoch, on_step=on_step)
        dump = os.environ.get("DIRECTNAS_DEBUG_DUMP")  # tests: every rank's final state
        if dump:
            torch_save(Path(dump) / f"rank{dist.rank}.pt",
                       {"net": searcher.net.state_dict(), "ops": arch.ops, "world": dist.world})
        summary = searcher.write_outputs(arch, wall_s=time.perf_counter() - t0) if dist.is_main else {}
    return SearchResult(arch=arch, predicted_latency_ms=arch.meta.get("predicted_latency_ms"),
                        target_latency_ms=cfg.target_latency_ms,
                        history=list(searcher.state.history), epochs=list(searcher.state.log),
                        space=space, table=lut,
                        supernet_valid_accuracy=summary.get("supernet_valid_accuracy", float("nan")),
                        out=Path(out) if out is not None else None)


class _run_folder:
    """``out`` as a Path, or a temporary folder removed afterwards."""

    def __init__(self, out: str | Path | None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="directnas-") if out is None else None
        self.path = Path(self.tmp.name) / "run" if self.tmp is not None else Path(str(out))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            self.tmp.cleanup()


def _data_name(data: Any, dataset: Dataset) -> str:
    return str(data) if isinstance(data, (str, Path)) else f"{type(data).__name__}:{dataset.name}"


# ---- train -----------------------------------------------------------------------------------
def _build(arch_or_model: Any, data: DataLike, test: DataLike | None,
           input_size: int | None) -> tuple[nn.Module, Arch | None, str, Dataset]:
    """(net, its Arch if any, its name, the data fitted to it)."""
    if isinstance(arch_or_model, SearchResult):
        arch_or_model = arch_or_model.arch
    name = None
    if isinstance(arch_or_model, (str, Path)) and str(arch_or_model) not in model_names():
        path = Path(arch_or_model)
        path = path / "arch.json" if path.is_dir() else path
        arch_or_model, name = Arch.load(path), f"searched:{path.parent.name}"
    if isinstance(arch_or_model, Arch):
        arch = arch_or_model
        space = arch.space
        dataset = as_dataset(data, test, size=space.input_size)
        c = dataset.input_shape[0]
        if c != space.input_channels:
            raise UserError(f"dataset images have {c} channel(s) but the architecture expects "
                            f"{space.input_channels} channel(s): use the dataset it was searched on")
        if dataset.train.num_classes > space.num_classes:
            raise UserError(f"dataset has {dataset.train.num_classes} classes but the architecture "
                            f"{space.num_classes}: use the dataset it was searched on")
        return arch.build(), arch, name or f"searched:{space.name}", dataset
    dataset = as_dataset(data, test, size=input_size)
    if isinstance(arch_or_model, str):
        net = build_named(arch_or_model, input_shape=dataset.input_shape,
                          num_classes=dataset.train.num_classes)
        # zoo nets built from a space are priced like searched ones
        return net, getattr(net, "arch", None), arch_or_model, dataset
    if isinstance(arch_or_model, nn.Module):
        return arch_or_model, None, type(arch_or_model).__name__, dataset
    raise UserError(f"cannot train a {type(arch_or_model).__name__}: give an Arch, an arch.json "
                    f"path, a SearchResult, an nn.Module or a model name ({', '.join(model_names())})")


def measure(net: nn.Module, input_shape: tuple[int, int, int], *, backend: str = "torch-cpu",
            **protocol: Any) -> dict[str, float]:
    """End-to-end latency of ``net`` on ``backend``; timed on a float32 CPU copy, so the
    caller's net (its device, dtype and memory format) is never changed."""
    clone = copy.deepcopy(net).cpu().float().to(memory_format=torch.contiguous_format)
    return measure_net(clone, input_shape, backend=backend, proto=make_protocol(protocol))


def train(arch_or_model: Any, data: DataLike, *, test: DataLike | None = None,
          epochs: int | None = None, out: str | Path | None = None, device: str = "auto",
          resume: bool = False, quick: bool = False, seed: int | None = None,
          backend: str | None = None, table: TableLike | None = None,
          measure_latency: bool = True, protocol: Mapping[str, Any] | None = None,
          input_size: int | None = None, config_file: str | Path | None = None,
          flip_tta: bool = True, progress: Progress = no_progress,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          **config: Any) -> TrainResult:
    """Train ``arch_or_model`` (an ``Arch``, an arch.json path, a ``SearchResult``, a named
    model or any ``nn.Module`` classifier) from scratch on ``data``; evaluate on ``test`` (or
    the dataset's own test split).  ``out``: a folder for the checkpoint, ``model.pt`` (read by
    ``directnas.load``) and ``metrics.json``; ``resume`` continues its checkpoint.
    ``config``: ``TrainConfig`` fields (``lr``, ``batch_size``, ``ema_decay``, ...).
    With ``measure_latency`` the trained net is timed on ``backend`` (on a copy of it).
    """
    named = isinstance(arch_or_model, str) and arch_or_model in model_names()
    dev = resolve_device(device)
    dist = init_from_env(dev)
    quiet_unless_main(dist.is_main)
    cfg = resolve_config(TrainConfig, yaml_path=config_file, what="training",
                         overrides={**config, "epochs": epochs, "seed": seed, "device": str(dev)},
                         quick=TRAIN_QUICK if quick else None)
    if named:
        import yaml

        in_file = set(yaml.safe_load(Path(config_file).read_text()) or {}) if config_file else set()
        for key, value in MODEL_RECIPES.get(arch_or_model, {}).items():
            if config.get(key) is None and key not in in_file:
                setattr(cfg, key, value)
    check_train_config(cfg)
    proto = make_protocol(protocol)
    folder = Path(out) if out is not None else None
    if folder is not None:
        dist.run_on_main(lambda: check_out_dir(folder, TRAIN_CHECKPOINT, resume=resume,
                                               what="training checkpoint"))
    net, arch, name, dataset = _build(arch_or_model, data, test, input_size)
    lut = dist.run_on_main(lambda: get_table(arch.space, table=table, backend=backend, proto=proto)) \
        if arch is not None and (table is not None or measure_latency) else None
    ck_path = folder / TRAIN_CHECKPOINT if folder is not None else None
    if resume and ck_path is not None and ck_path.exists():
        dist.run_on_main(lambda: load_train_checkpoint(ck_path, net) and None)
    # everything is checked: from here on the run folder is written (by rank 0 only)
    if dist.is_main and folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "train_config.json",
                   {**asdict(cfg), "model": name, "data": _data_name(data, dataset),
                    "input_shape": list(dataset.input_shape),
                    "num_classes": dataset.train.num_classes, "world": dist.world})
    t0 = time.perf_counter()
    result = train_net(net, dataset, cfg, progress=progress if dist.is_main else no_progress,
                       on_epoch=on_epoch, checkpoint=ck_path, resume=resume, dist=dist,
                       flip_tta=flip_tta)
    net = net.to(memory_format=torch.contiguous_format).eval()
    model = Classifier(net, dataset.mean, dataset.std).eval()
    metrics = _metrics(net, name, dataset, cfg, result, train_s=time.perf_counter() - t0)
    if not dist.is_main:
        return TrainResult(model, metrics, folder)
    if measure_latency:
        lat = measure(net, dataset.input_shape, backend=backend or "torch-cpu", **asdict(proto))
        metrics.update(latency_ms=lat["ms"], latency_spread_ms=lat["spread_ms"],
                       latency_backend=backend or "torch-cpu", latency_batch_size=proto.batch_size,
                       latency_threads=proto.threads)
    if arch is not None and lut is not None:
        metrics["predicted_latency_ms"] = predict_arch_ms(arch, lut)
        metrics["arch"] = arch.ops
    if folder is not None:
        torch_save(folder / "model.pt", {
            "kind": "directnas-model", "name": name, "arch": arch.to_dict() if arch else None,
            "model": name if named else None,
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "input_shape": dataset.input_shape, "num_classes": dataset.train.num_classes,
            "mean": dataset.mean, "std": dataset.std,
            "recipe": {k: getattr(cfg, k) for k in RECIPE_KEYS}})
        write_json(folder / "metrics.json", metrics)
    return TrainResult(model, metrics, folder)


def _metrics(net: nn.Module, name: str, dataset: Dataset, cfg: TrainConfig,
             result: dict[str, float], *, train_s: float) -> dict[str, Any]:
    m: dict[str, Any] = {"model": name}
    if "accuracy" in result:
        m.update(test_accuracy=result["accuracy"], test_loss=result["loss"])
    if "accuracy_flip_tta" in result:
        m["test_accuracy_flip_tta"] = result["accuracy_flip_tta"]
    m.update(params=count_params(net), macs=count_macs(net, dataset.input_shape),
             train_wall_s=train_s, epochs=cfg.epochs, device=cfg.device)
    return m


__all__ = ["SearchResult", "TrainResult", "make_protocol", "measure", "profile", "search", "train"]

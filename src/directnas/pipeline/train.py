"""The training stage as a library call: ``train(arch_or_model, data)`` trains from scratch,
evaluates, times the net and writes ``model.pt`` + ``metrics.json``; returns a ``TrainResult``."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from directnas.config import resolve_config
from directnas.data.datasets import Dataset
from directnas.data.sources import DataLike, as_dataset
from directnas.errors import UserError
from directnas.latency.cache import TableLike, get_table, make_protocol, measure
from directnas.latency.measure import Protocol
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.table import LatencyTable
from directnas.models.classifier import Classifier
from directnas.models.model_file import ModelFile
from directnas.models.registry import build_named, model_names
from directnas.pipeline.checks import check_batch, check_entry
from directnas.pipeline.outdir import claimed
from directnas.pipeline.runfolder import check_out_dir, quiet_unless_main
from directnas.pipeline.search import SearchResult, data_name
from directnas.space.arch import Arch
from directnas.training.train_net import (MODEL_RECIPES, RECIPE_KEYS, TRAIN_CHECKPOINT, TrainConfig,
                                          check_train_config, count_macs, count_params,
                                          load_train_checkpoint, resolve_epochs, train_net)
from directnas.training.trainer import Progress, no_progress
from directnas.utils.device import resolve_device
from directnas.utils.distributed import Dist, init_from_env
from directnas.utils.fileio import write_json
from directnas.utils.seeding import check_seed, seed_everything

log = logging.getLogger(__name__)
TRAIN_QUICK = {"epochs": 1, "max_steps": 30}

@dataclass
class TrainResult:
    model: nn.Module  # eval mode; takes (N, C, H, W) floats in [0, 1] and normalises inside
    metrics: dict[str, Any] = field(default_factory=dict)  # test_accuracy when test data is given
    out: Path | None = None
    file: ModelFile | None = None  # what out/model.pt holds (also without ``out``)


@dataclass
class Built:
    """A net to train and what names it: its Arch (if built from a space), its name in
    metrics.json and model.pt, and its registry name (a named model)."""

    net: nn.Module
    arch: Arch | None
    name: str
    registry_name: str | None = None


def _build(arch_or_model: Any, data: DataLike, test: DataLike | None,
           input_size: int | None) -> tuple[Built, Dataset]:
    """The net to train and the data fitted to it."""
    if isinstance(arch_or_model, SearchResult):
        arch_or_model = arch_or_model.arch
    name = None
    if isinstance(arch_or_model, (str, Path)) and str(arch_or_model) not in model_names():
        path = Path(arch_or_model)
        path = path / "arch.json" if path.is_dir() else path
        arch_or_model, name = Arch.load(path), f"searched:{path.parent.name}"
    if isinstance(arch_or_model, Arch):
        arch = arch_or_model
        dataset = as_dataset(data, test, size=arch.space.input_size)
        check_arch_data(arch, dataset)
        return Built(arch.build(), arch, name or f"searched:{arch.space.name}"), dataset
    dataset = as_dataset(data, test, size=input_size)
    if isinstance(arch_or_model, str):
        net = build_named(arch_or_model, input_shape=dataset.input_shape,
                          num_classes=dataset.train.num_classes)
        # zoo nets built from a space are priced like searched ones
        return Built(net, getattr(net, "arch", None), arch_or_model, arch_or_model), dataset
    if isinstance(arch_or_model, nn.Module):
        return Built(arch_or_model, None, type(arch_or_model).__name__), dataset
    raise UserError(f"cannot train a {type(arch_or_model).__name__}: give an Arch, an arch.json "
                    f"path, a SearchResult, an nn.Module or a model name ({', '.join(model_names())})")


def check_arch_data(arch: Arch, dataset: Dataset) -> None:
    """The data has the channels the architecture takes and no more classes than it has."""
    space = arch.space
    c = dataset.input_shape[0]
    if c != space.input_channels:
        raise UserError(f"dataset images have {c} channel(s) but the architecture expects "
                        f"{space.input_channels} channel(s): use the dataset it was searched on")
    if dataset.train.num_classes > space.num_classes:
        raise UserError(f"dataset has {dataset.train.num_classes} classes but the architecture "
                        f"{space.num_classes}: use the dataset it was searched on")


def train_config(config: Mapping[str, Any], *, quick: bool = False,
                 config_file: str | Path | None = None,
                 named: str | None = None) -> TrainConfig:
    """The training options, layered (defaults <- ``quick`` <- ``config_file`` <- ``config``),
    with a named model's own recipe where neither the file nor ``config`` sets a value; checked."""
    cfg = resolve_config(TrainConfig, yaml_path=config_file, what="training", overrides=config,
                         quick=TRAIN_QUICK if quick else None)
    if named:
        import yaml

        in_file = set(yaml.safe_load(Path(config_file).read_text()) or {}) if config_file else set()
        for key, value in MODEL_RECIPES.get(named, {}).items():
            if config.get(key) is None and key not in in_file:
                setattr(cfg, key, value)
    check_train_config(cfg)
    check_seed(cfg.seed)
    if cfg.epochs is not None and cfg.epochs < 1:  # None: scaled to the data size
        raise UserError(f"training option epochs must be >= 1, got {cfg.epochs}: pass e.g. "
                        "--epochs 1")
    return cfg


def train(arch_or_model: Any, data: DataLike, *, test: DataLike | None = None,
          epochs: int | None = None, out: str | Path | None = None, device: str = "auto",
          resume: bool = False, quick: bool = False, seed: int | None = None,
          backend: str | None = None, table: TableLike | None = None,
          measure_latency: bool = True, protocol: Mapping[str, Any] | None = None,
          input_size: int | None = None, config_file: str | Path | None = None,
          flip_tta: bool = True, progress: Progress = no_progress,
          on_epoch: Callable[[int, dict[str, float]], None] | None = None,
          force: bool = False, **config: Any) -> TrainResult:
    """Train ``arch_or_model`` (an ``Arch``, an arch.json path, a ``SearchResult``, a named
    model or any ``nn.Module`` classifier) from scratch on ``data``; evaluate on ``test`` (or
    the dataset's own test split).  ``out``: a folder for the checkpoint, ``model.pt`` (read by
    ``directnas.load``) and ``metrics.json``; ``resume`` continues its checkpoint.
    ``config``: ``TrainConfig`` fields (``lr``, ``batch_size``, ``ema_decay``, ...).
    With ``measure_latency`` the trained net is timed on ``backend`` (on a copy of it).
    Every input is checked before any work; ``out`` must be new, empty or a training folder
    (``force``: any folder that is no other command's).
    """
    named = arch_or_model if isinstance(arch_or_model, str) and arch_or_model in model_names() else None
    dev = resolve_device(device)
    dist = init_from_env(dev)
    quiet_unless_main(dist.is_main)
    cfg = train_config({**config, "epochs": epochs, "seed": seed, "device": str(dev)}, quick=quick,
                       config_file=config_file, named=named)
    dist.run_on_main(lambda: check_entry("train", out=out, force=force, backend=backend,
                                         input_size=input_size))
    seed_everything(cfg.seed)  # before anything random: the net's initial weights, data order
    proto = make_protocol(protocol)
    folder = Path(out) if out is not None else None
    if folder is not None:
        dist.run_on_main(lambda: check_out_dir(folder, TRAIN_CHECKPOINT, resume=resume,
                                               what="training checkpoint"))
    built, dataset = _build(arch_or_model, data, test, input_size)
    check_batch(cfg.batch_size, len(dataset.train), world=dist.world)  # before a table is profiled
    arch = built.arch
    lut = dist.run_on_main(lambda: get_table(arch.space, table=table, backend=backend, proto=proto)) \
        if arch is not None and (table is not None or measure_latency) else None
    with claimed(folder or Path(), "train", active=dist.is_main and folder is not None):
        return train_built(built, dataset, cfg, folder=folder, lut=lut, backend=backend,
                           proto=proto, resume=resume, measure_latency=measure_latency,
                           flip_tta=flip_tta, data_label=data_name(data, dataset),
                           progress=progress, on_epoch=on_epoch, dist=dist)


def train_built(built: Built, dataset: Dataset, cfg: TrainConfig, *, folder: Path | None,
                lut: LatencyTable | None, backend: str | None, proto: Protocol,
                resume: bool, data_label: str, measure_latency: bool = True,
                flip_tta: bool = True, progress: Progress = no_progress,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                dist: Dist | None = None) -> TrainResult:
    """Train ``built.net`` with a checked ``cfg`` on ``dataset`` (fitted to it), evaluate, time
    it on ``backend`` and, with ``folder``, write model.pt and metrics.json there.  The caller
    seeds before building the net (``train`` at its entry, ``run`` at the stage's)."""
    dist = dist or init_from_env(torch.device(cfg.device))
    cfg = resolve_epochs(cfg, len(dataset.train), world=dist.world)
    net, arch = built.net, built.arch
    ck_path = folder / TRAIN_CHECKPOINT if folder is not None else None
    if resume and ck_path is not None and ck_path.exists():
        dist.run_on_main(lambda: load_train_checkpoint(ck_path, net) and None)
    # everything is checked: from here on the run folder is written (by rank 0 only)
    if dist.is_main and folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / "train_config.json",
                   {**asdict(cfg), "model": built.name, "data": data_label,
                    "input_shape": list(dataset.input_shape),
                    "num_classes": dataset.train.num_classes, "world": dist.world})
    t0 = time.perf_counter()
    result = train_net(net, dataset, cfg, progress=progress if dist.is_main else no_progress,
                       on_epoch=on_epoch, checkpoint=ck_path, resume=resume, dist=dist,
                       flip_tta=flip_tta)
    net = net.to(memory_format=torch.contiguous_format).eval()
    model = Classifier(net, dataset.mean, dataset.std).eval()
    metrics = _metrics(net, built.name, dataset, cfg, result, train_s=time.perf_counter() - t0)
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
    file = ModelFile.of(net, name=built.name, arch=arch.to_dict() if arch else None,
                        model=built.registry_name, input_shape=dataset.input_shape,
                        num_classes=dataset.train.num_classes, mean=dataset.mean, std=dataset.std,
                        recipe={k: getattr(cfg, k) for k in RECIPE_KEYS})
    if folder is not None:
        file.save(folder / "model.pt")
        write_json(folder / "metrics.json", metrics)
    return TrainResult(model, metrics, folder, file)


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

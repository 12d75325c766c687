"""The search stage as a library call: ``search(space, data, target_latency=...)`` checks its
inputs, gets the latency table, runs the ``Searcher`` in a run folder and returns a ``SearchResult``."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from directnas.config import field_names, read_yaml_options, resolve_config
from directnas.data.auto_space import choose_space
from directnas.data.datasets import Dataset
from directnas.data.sources import DataLike, as_dataset, fit_space, space_summary
from directnas.latency.cache import SpaceLike, TableLike, get_table, make_protocol
from directnas.latency.table import LatencyTable
from directnas.latency.target import Target, check_reachable, resolve_target
from directnas.nas.searcher import (CHECKPOINT, SearchConfig, Searcher, check_config,
                                    check_loss_derive,
                                    check_data_fits, valid_split_size)
from directnas.pipeline.checks import check_entry, search_batch
from directnas.pipeline.outdir import claimed
from directnas.pipeline.runfolder import check_out_dir, quiet_unless_main, save_resolved
from directnas.space.arch import Arch
from directnas.space.fitted import MAX_INPUT_SIZE
from directnas.space.space import SearchSpace, save_space
from directnas.training.budget import scaled_epochs, steps_per_pass
from directnas.training.trainer import Progress, no_progress
from directnas.utils.device import resolve_device
from directnas.utils.distributed import Dist, init_from_env
from directnas.utils.seeding import check_seed, seed_everything

log = logging.getLogger(__name__)
SEARCH_QUICK = {"warmup_epochs": 1, "epochs": 1, "max_steps": 30, "valid_size": 1000, "arch_every": 1}


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


def search(space: SpaceLike | None, data: DataLike, *, target_latency: Target | None = None,
           backend: str | None = None, table: TableLike | None = None,
           out: str | Path | None = None, quick: bool = False, seed: int | None = 0,
           device: str = "auto", resume: bool = False, input_size: int | None = None,
           config_file: str | Path | None = None, protocol: Mapping[str, Any] | None = None,
           progress: Progress = no_progress,
           on_epoch: Callable[[dict[str, float]], None] | None = None,
           on_step: Callable[[int], None] | None = None,
           after_search: Callable[[Searcher, Arch], None] | None = None,
           warmup_cache: str | Path | None = None,
           max_input_size: int | None = MAX_INPUT_SIZE, force: bool = False,
           **config: Any) -> SearchResult:
    """ProxylessNAS search of ``space`` (a preset name, a YAML path or a ``SearchSpace``) on
    ``data`` for the latency ``target_latency`` (ms, or a multiple of the fastest net: ``"1.5x"``).

    The space takes the data's number of classes and channels; images are resized to its
    input size (or ``input_size``).  ``space`` None (or ``"auto"``): chosen from the data
    (``data.auto_space``; at most ``max_input_size`` px) and logged; the space searched is
    saved as ``out/space.yaml`` when the search ends.  ``table``: a latency table (or its
    path) instead of this device's (profiled with ``protocol`` on ``backend``).  ``out``: a
    run folder for the checkpoints and outputs (None: a temporary one); ``resume`` continues
    its checkpoint.
    ``config``: ``SearchConfig`` fields (``epochs``, ``lr``, ``strategy``, ...).  Under
    torchrun every rank searches its shard; rank 0 alone writes.  ``on_step(step)`` is called
    after every weight step, ``after_search(searcher, arch)`` on every rank when the search
    has ended, before the outputs are written (the supernet is ``searcher.net``).
    ``warmup_cache``: a file for the supernet after its warm-up, shared by searches of other
    targets with the same data and options (written by the first, started from by the others).
    Every input is checked before any work; ``out`` must be new, empty or a search folder
    (``force``: any folder that is no other command's).
    """
    dev = resolve_device(device)
    dist = init_from_env(dev)
    quiet_unless_main(dist.is_main)
    cfg = search_config(config, seed=seed, device=str(dev), quick=quick, config_file=config_file)
    check_loss_derive(cfg, has_target=target_latency is not None)
    dist.run_on_main(lambda: check_entry("search", out=out, force=force, backend=backend,
                                         targets=[target_latency], input_size=input_size))
    seed_everything(cfg.seed)  # before anything random: the supernet, data order, gates
    proto = make_protocol(protocol)
    choice = choose_space(space, data, input_size=input_size, max_input_size=max_input_size)
    space = choice.space
    dataset = as_dataset(data, size=input_size or space.input_size)
    fit_valid_size(cfg, dataset, quick=quick, given=config)
    fit_search_epochs(cfg, dataset, quick=quick, given=config, config_file=config_file,
                      world=dist.world)
    given, space = space, fit_space(space, dataset, input_size=input_size, quiet=choice.fitted)
    check_data_fits(space, dataset)
    if choice.line(space):
        log.info("%s", choice.line(space))
    search_batch(cfg.batch_size, valid_split_size(cfg, len(dataset.train)), dataset,
                 world=dist.world)  # before a table is profiled
    with _run_folder(out) as folder:
        dist.run_on_main(lambda: check_out_dir(folder, CHECKPOINT, resume=resume,
                                               what="search checkpoint"))
        if table is None and resume and (folder / "latency.json").exists():
            table = folder / "latency.json"
        bar = None if progress is no_progress else progress  # the profiling rounds
        lut = dist.run_on_main(lambda: get_table(space, table=table, backend=backend, proto=proto,
                                                 fitted=space != given, progress=bar))
        cfg.target_latency_ms = resolve_target(target_latency, space, lut)
        check_reachable(cfg.target_latency_ms, space, lut)
        with claimed(folder, "search", active=dist.is_main and out is not None):
            result = search_in(folder, space, dataset, lut, cfg, resume=resume, backend=backend,
                               data_label=data_name(data, dataset), dist=dist,
                               progress=progress, on_epoch=on_epoch, on_step=on_step,
                               after_search=after_search, warmup_cache=warmup_cache)
            if out is not None and dist.is_main:
                save_space(space, folder / "space.yaml", note=choice.note(data))
    result.out = Path(out) if out is not None else None
    return result


def search_config(config: Mapping[str, Any], *, seed: int | None, device: str, quick: bool,
                  config_file: str | Path | None) -> SearchConfig:
    """The search options, layered (defaults <- ``quick`` <- ``config_file`` <- ``config``) and
    checked."""
    cfg = resolve_config(SearchConfig, yaml_path=config_file, what="search",
                         overrides={**config, "seed": seed, "device": device},
                         quick=SEARCH_QUICK if quick else None)
    check_config(cfg)
    check_seed(cfg.seed)
    return cfg


def fit_valid_size(cfg: SearchConfig, dataset: Dataset, *, quick: bool,
                   given: Mapping[str, Any]) -> None:
    """On small data the smoke budget's validation split is the default 10 % of the training
    split (unless ``valid_size`` was given)."""
    if quick and "valid_size" not in given and (cfg.valid_size or 0) * 2 > len(dataset.train):
        cfg.valid_size = None


# the weight sharing of a search on small data (``fit_search_epochs``)
SMALL_DATA_SHARING = "full"
# the search epochs (of ``max_steps`` steps) after the warm-up on small data: one, not two.  On
# the sign-language photos the argmax net stopped changing after ~300 of 660 search steps, and on
# NAS-Bench-Macro the longer search picked no better net (BENCHMARKS.md, the budget curve); a
# search step there costs 1.4x a warm-up step (the alpha steps)
SMALL_DATA_SEARCH_EPOCHS = 1
# data is small when one pass over it is shorter than this many steps (the default epoch,
# ``SearchConfig.max_steps``) and than the epoch asked for
SMALL_DATA_PASS = int(SearchConfig.max_steps or 0)


def fit_search_epochs(cfg: SearchConfig, dataset: Dataset, *, quick: bool,
                      given: Mapping[str, Any], config_file: str | Path | None = None,
                      world: int = 1) -> None:
    """Without ``quick``, and unless ``warmup_epochs`` or ``epochs`` was given (or set in
    ``config_file``), each epoch of the search makes at least ``max_steps`` weight steps
    (``training.budget.scaled_epochs``): the supernet of a small dataset gets the steps of a
    large one's warm-up, and the search after it ``SMALL_DATA_SEARCH_EPOCHS`` such epochs.  On
    such data, unless ``weight_sharing`` was given, the MBConv candidates of a layer also share
    their weights (``SMALL_DATA_SHARING``): without it the supernet of the 1,486 sign-language
    photos stays at chance through the whole budget, with it its argmax path scores 82 % after
    the warm-up (docs/search-strategies.md).  Both are logged."""
    keys = set(given) | (set(read_yaml_options(config_file, field_names(SearchConfig)))
                         if config_file else set())
    if quick or cfg.max_steps is None:
        return
    n = len(dataset.train)
    train_images = n - (cfg.valid_size or min(5000, max(1, n // 10)))  # as the Searcher splits
    per_pass = steps_per_pass(train_images, cfg.batch_size, world=world)
    given_budget = bool(keys & {"warmup_epochs", "epochs"})
    # small data: a pass shorter than the default epoch (not a raised --max-steps: 45,000 images
    # are not small data because a user asked for longer epochs)
    small = per_pass < min(cfg.max_steps, SMALL_DATA_PASS)
    if small and "weight_sharing" not in keys:
        # said with the budget's line below; with a given budget only in search_config.json,
        # so that a bad input found later stops with its one line
        (log.debug if given_budget else log.info)(
            "search: the MBConv candidates of a layer share one set of weights on small data "
            "(weight sharing %s: unshared, the supernet of %d images may not learn at all; "
            "--weight-sharing none turns it off)", SMALL_DATA_SHARING, train_images)
        cfg.weight_sharing = SMALL_DATA_SHARING
    if given_budget:
        return
    epochs = min(cfg.epochs, SMALL_DATA_SEARCH_EPOCHS) if small else cfg.epochs
    scaled = [scaled_epochs(e, per_pass, cfg.max_steps) for e in (cfg.warmup_epochs, epochs)]
    if scaled != [cfg.warmup_epochs, cfg.epochs]:
        log.info("search: %d warm-up + %d search epochs of %d steps on %d images (epochs of at "
                 "least %d steps on small data; --warmup-epochs / --epochs set them)", *scaled,
                 per_pass, train_images, cfg.max_steps)
        cfg.warmup_epochs, cfg.epochs = scaled


def search_in(folder: Path, space: SearchSpace, dataset: Dataset, lut: LatencyTable,
              cfg: SearchConfig, *, resume: bool, backend: str | None, data_label: str,
              dist: Dist | None = None, progress: Progress = no_progress,
              on_epoch: Callable[[dict[str, float]], None] | None = None,
              on_step: Callable[[int], None] | None = None,
              after_search: Callable[[Searcher, Arch], None] | None = None,
              warmup_cache: str | Path | None = None) -> SearchResult:
    """Search ``space`` (fitted to ``dataset``) with a checked ``cfg`` whose target is in ms, on
    the table ``lut``, in ``folder``; rank 0 writes arch.json, search.json and the table there.
    The caller seeds (``search`` at its entry, ``run`` at the stage's)."""
    dist = dist or init_from_env(torch.device(cfg.device))
    searcher = Searcher(space, dataset, lut, cfg, folder, dist=dist, warmup_cache=warmup_cache)
    ck = dist.run_on_main(searcher.load_checkpoint) if resume else None
    if ck is not None and searcher.resume(ck):
        log.info("resumed at epoch %d, step %d", searcher.state.epoch, searcher.state.step)
    # everything is checked: from here on the run folder is written (by rank 0 only)
    if dist.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        lut.save(folder / "latency.json")
        save_resolved(folder, "search_config.json", cfg,
                      {**space_summary(space), "data": data_label,
                       "backend": backend or "torch-cpu", "world": dist.world})
    t0 = time.perf_counter()
    arch = searcher.run(progress=progress if dist.is_main else no_progress,
                        on_epoch=on_epoch, on_step=on_step)
    if after_search is not None:
        after_search(searcher, arch)
    summary = searcher.write_outputs(arch, wall_s=time.perf_counter() - t0) if dist.is_main else {}
    return SearchResult(arch=arch, predicted_latency_ms=arch.meta.get("predicted_latency_ms"),
                        target_latency_ms=cfg.target_latency_ms,
                        history=list(searcher.state.history), epochs=list(searcher.state.log),
                        space=space, table=lut,
                        supernet_valid_accuracy=summary.get("supernet_valid_accuracy", float("nan")),
                        out=folder)


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


def data_name(data: Any, dataset: Dataset) -> str:
    return str(data) if isinstance(data, (str, Path)) else f"{type(data).__name__}:{dataset.name}"

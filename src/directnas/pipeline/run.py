"""The whole pipeline in one resumable run folder: profile -> search -> train -> export ->
references -> report (-> compress).  The paths are ``RunFolder``'s.

Several targets give one search + train each in ``OUT/t<target>/`` and a report over all of
them in ``OUT``.  Every stage folder keeps the options it was made with (``stage.json``): a
finished stage is skipped when called again with the same options, and other options are
refused rather than mixing two configs.  The configs are checked, the data loaded and each
target resolved once; the stages hand the table, the ``Arch``, the dataset and the trained net
to each other in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from directnas.data.auto_space import choose_space
from directnas import runtimes
from directnas.data.datasets import Dataset
from directnas.data.sources import DataLike, as_dataset, fit_space, space_summary
from directnas.errors import UserError
from directnas.latency.cache import make_protocol
from directnas.latency.measure import Protocol
from directnas.latency.near_target import NEAR_NETS, NearTarget
from directnas.latency.table import LatencyTable
from directnas.latency.target import Target, parse_target, resolve_target
from directnas.nas.searcher import (SearchConfig, check_data_fits, check_loss_derive,
                                    valid_split_size)
from directnas.pipeline.compress import compress_stage
from directnas.pipeline.export import export_stage, target_check_stage
from directnas.pipeline.latency_stages import near_stage, profile_stage
from directnas.pipeline.references import ReferenceOptions, references_stage
from directnas.pipeline.checks import check_batch, check_entry, search_batch
from directnas.pipeline.outdir import claimed
from directnas.pipeline.runfolder import RunFolder, quiet_unless_main
from directnas.pipeline.search import (data_name, fit_search_epochs, fit_valid_size, search_config,
                                       search_in)
from directnas.pipeline.sections import append_compress_section, append_export_section
from directnas.pipeline.stages import data_key, enter_stage, options_key, train_stage
from directnas.pipeline.train import Built, TrainResult, train_built, train_config
from directnas.report.tblog import EpochLog
from directnas.report.writer import write_report
from directnas.space.arch import Arch
from directnas.space.fitted import MAX_INPUT_SIZE
from directnas.space.space import SearchSpace, load_space, save_space
from directnas.training.train_net import TrainConfig
from directnas.training.trainer import Progress, no_progress
from directnas.utils.device import resolve_device
from directnas.utils.distributed import Dist, init_from_env
from directnas.utils.seeding import seed_everything

log = logging.getLogger(__name__)


@dataclass
class TargetResult:
    folder: Path
    target: Target | None
    arch: Arch
    metrics: dict[str, Any]
    exported: dict[str, Any] | None = None
    check: dict[str, Any] | None = None   # deploy.target_check: the artifact against the target
    compressed: dict[str, Any] | None = None  # compress/metrics.json (``compress`` given)
    references: dict[str, Any] | None = None  # references/references.json (references trained)


@dataclass
class Plan:
    """What every target of a run shares: the checked configs, the options they came from (for
    the stage keys), the data, the latency protocol, and where the run speaks."""

    search_cfg: SearchConfig
    search_options: dict[str, Any]
    train_cfg: TrainConfig
    train_options: dict[str, Any]
    compress: dict[str, Any] | None
    dataset: Dataset
    stage_data: dict[str, Any]
    backend: str | None
    protocol: dict[str, Any]
    proto: Protocol
    dist: Dist
    progress: Progress
    tensorboard: bool
    say: Callable[[str], None]
    references: ReferenceOptions | None = None
    # the data as train_config.json records it: the folder a user gave (so that compress and
    # export find it again), else ``Type:name`` (data given in memory)
    data_label: str = ""


def _label(target: Target | None) -> str:
    return "none" if target is None else target if isinstance(target, str) else f"{target:g}"


def run(space: str | Path | SearchSpace | None = None, data: DataLike = "fashion-mnist", *,
        out: str | Path, target_latency: Target | Sequence[Target] | None = None,
        test: DataLike | None = None, backend: str | None = None, table: str | Path | None = None,
        protocol: Mapping[str, Any] | None = None, device: str = "auto",
        input_size: int | None = None, search: Mapping[str, Any] | None = None,
        train: Mapping[str, Any] | None = None, compress: Mapping[str, Any] | None = None,
        compare: Sequence[str | Path] = (), tensorboard: bool = True,
        say: Callable[[str], None] = log.info, progress: Progress = no_progress,
        near_nets: int = NEAR_NETS,
        max_input_size: int | None = MAX_INPUT_SIZE,
        references: ReferenceOptions | Mapping[str, Any] | bool | None = True,
        force: bool = False) -> list[TargetResult]:
    """Profile, search, train, export and report for each target in ``out``; call it again to
    resume.

    ``space``: a preset name, a YAML path or a ``SearchSpace``; None (or ``"auto"``): chosen
    from ``data`` (``data.auto_space``: the ``fashion-mnist`` preset for the demo's data, else
    a space fitted to the images' size, at most ``max_input_size`` px unless ``input_size``).
    The space searched is saved as ``out/space.yaml``.

    ``search`` / ``train``: keyword options of ``directnas.search`` / ``directnas.train`` (their
    config fields, ``quick``, ``seed``, ``config_file``).  ``compress``: keyword options of
    ``directnas.compress`` (``method``, ``max_loss``, ``target_ratio``, ...): each trained net
    is then compressed in ``<target folder>/compress``.  ``say`` gets one line per stage.
    Each stage seeds at its entry (the search and the training with their ``seed``), so a run
    re-run from any stage boundary trains the same net as an uninterrupted one.
    ``near_nets``: when the table is profiled here, that many whole nets predicted near each
    target are timed and the table re-anchored on them before the search
    (``latency.near_target``; 0: off).
    ``backend``: None picks the best deployment runtime installed (``default_backend``; with a
    ``table``, the table's own).  ``references``: the nets each target's searched net is
    compared with, trained with its recipe and timed beside its artifact
    (``pipeline.references``): True (default: 4 random nets of its latency window and the
    MobileNets), a ``ReferenceOptions`` or a mapping of its fields, or None/False for none.
    Every input is checked before any work; ``out`` must be new, empty or a run folder
    (``force``: any folder that is no other command's).
    """
    targets = target_latency if isinstance(target_latency, (list, tuple)) else [target_latency]
    targets = list(dict.fromkeys(None if t is None else parse_target(t) for t in targets))
    backend = default_backend(backend, table, say)
    refs = ReferenceOptions.of(references)
    root = RunFolder(Path(out))
    init_from_env(resolve_device(device)).run_on_main(  # rank 0 alone checks its folder
        lambda: check_entry("run", out=out, force=force, backend=backend, input_size=input_size))
    choice = choose_space(space, data, input_size=input_size, max_input_size=max_input_size)
    base = choice.space
    dataset = as_dataset(data, test, size=input_size or base.input_size)
    fitted = fit_space(base, dataset, input_size=input_size, quiet=choice.fitted)
    if choice.line(fitted):
        say(f"{choice.line(fitted)} -> {root.space}" if choice.fitted else str(choice.line(fitted)))
    plan = _plan(fitted, dataset, data, search=search or {}, train=train or {},
                 compress=compress, device=device, backend=backend, protocol=protocol,
                 progress=progress, tensorboard=tensorboard, say=say)
    check_loss_derive(plan.search_cfg, has_target=any(t is not None for t in targets))
    plan.references = refs
    with claimed(root.root, "run", active=plan.dist.is_main):
        if plan.dist.is_main:
            keep_space(root, fitted, choice.note(data))
        lut = profile_stage(root, fitted, table=table, backend=backend, protocol=protocol,
                            fitted=fitted != base, say=say, progress=progress)
        results = [_run_one(root, fitted, plan, t, lut, several=len(targets) > 1, table=table,
                            near_nets=near_nets, compare=compare) for t in targets]
        if len(targets) > 1:
            write_report([*(r.folder for r in results), *compare], root.root,
                         title=f"directnas run {root.root.name}")
    return results


def keep_space(root: RunFolder, space: SearchSpace, note: str) -> None:
    """``root.space``: the space of the run, written once (a folder made with another space is
    refused before anything in it changes)."""
    if root.space.exists():
        old = load_space(root.space)
        if old.fingerprint() != space.fingerprint():
            raise UserError(f"{root.root} was made with another space ({old.name}, "
                            f"{old.input_size} px; now {space.name}, {space.input_size} px): "
                            "re-run with the same space and data, or use a new --out")
        return
    save_space(space, root.space, note=note)


def default_backend(backend: str | None, table: str | Path | None,
                    say: Callable[[str], None]) -> str | None:
    """The run's backend: ``backend`` when named; with a given ``table``, None (the table's own);
    otherwise the best deployment runtime installed (``runtimes.best_installed``), said in one
    line."""
    if backend is not None or table is not None:
        return backend
    chosen = runtimes.best_installed()
    say(f"backend: {chosen} (the best deployment runtime installed; --backend NAME picks another)")
    return chosen


def _run_one(root: RunFolder, fitted: SearchSpace, plan: Plan, t: Target | None,
             lut: LatencyTable, *, several: bool, table: str | Path | None, near_nets: int,
             compare: Sequence[str | Path]) -> TargetResult:
    """The target ``t``: its table (re-anchored near it when profiled here), resolved in ms,
    then ``run_target`` in its folder."""
    say = plan.say
    folder = root.target(_label(t), several=several)
    if several:
        unit = "" if isinstance(t, str) or t is None else " ms"
        say(f"== target {_label(t)}{unit} -> {folder.root}")
    tlut, tpath, key_target = lut, root.latency, t
    if table is None and t is not None and near_nets > 0:  # profiled here: re-anchor at t
        tlut = near_stage(folder, fitted, lut, root.latency, t, backend=plan.backend,
                          protocol=plan.protocol, nets=near_nets, say=say,
                          progress=plan.progress)
        tpath = folder.near_latency
    # a relative target (2x the fastest net) is resolved on the fastest net as timed beside
    # the near-target nets, when there are any
    target_ms = resolve_target(t, fitted, tlut)
    if tpath == folder.near_latency:
        key_target = target_ms
    return run_target(folder, fitted, plan, t, key_target, target_ms, tlut, tpath,
                      compare=compare, warmup=root.warmup)


def _plan(space: SearchSpace, dataset: Dataset, data: DataLike, *, search: Mapping[str, Any],
          train: Mapping[str, Any], compress: Mapping[str, Any] | None, device: str,
          backend: str | None, protocol: Mapping[str, Any] | None, progress: Progress,
          tensorboard: bool, say: Callable[[str], None]) -> Plan:
    """Every config of the run, checked once (before any stage runs), and the data checked
    against the space."""
    dev = resolve_device(device)
    dist = init_from_env(dev)
    quiet_unless_main(dist.is_main)
    s = {k: v for k, v in search.items() if k not in ("quick", "seed", "config_file")}
    scfg = search_config(s, seed=search.get("seed", 0), device=str(dev),
                         quick=bool(search.get("quick")), config_file=search.get("config_file"))
    fit_valid_size(scfg, dataset, quick=bool(search.get("quick")), given=s)
    tr = {k: v for k, v in train.items() if k not in ("quick", "config_file")}
    tcfg = train_config({**tr, "device": str(dev)}, quick=bool(train.get("quick")),
                        config_file=train.get("config_file"))
    check_data_fits(space, dataset)
    search_batch(scfg.batch_size, valid_split_size(scfg, len(dataset.train)), dataset,
                 world=dist.world)
    check_batch(tcfg.batch_size, len(dataset.train), world=dist.world,
                flag="--train-batch-size")
    # every input is checked: the search's budget (said in one line) scales with the data
    fit_search_epochs(scfg, dataset, quick=bool(search.get("quick")), given=s,
                      config_file=search.get("config_file"), world=dist.world)
    common = {"device": device, "protocol": dict(protocol or {}), "progress": progress,
              "backend": backend}
    stage_data = {"data": data_key(data, dataset), **space_summary(space),
                  "space_fingerprint": space.fingerprint()}
    return Plan(scfg, {**search, **common}, tcfg, {**train, **common},
                dict(compress) if compress is not None else None, dataset, stage_data, backend,
                dict(protocol or {}), make_protocol(protocol), dist, progress, tensorboard, say,
                data_label=str(Path(data).resolve()) if isinstance(data, (str, Path))
                and Path(data).exists() else data_name(data, dataset))


def run_target(folder: RunFolder, space: SearchSpace, plan: Plan, target: Target | None,
               key_target: Target | None, target_ms: float | None, table: LatencyTable,
               table_path: Path, *, compare: Sequence[str | Path],
               warmup: Path | None = None) -> TargetResult:
    """One target: search -> train -> export -> references -> report (-> compress) in
    ``folder``, on ``table`` (saved at ``table_path``) with the target ``target_ms``; the search
    starts from the run's shared warm-up ``warmup`` when an earlier target left one."""
    say = plan.say
    arch = search_stage(folder, space, plan, table, target_ms,
                        key={**options_key(plan.search_options), **plan.stage_data,
                             "target_latency_ms": key_target}, warmup=warmup)
    key = {**options_key({**plan.train_options, "table": table_path}), **plan.stage_data,
           "arch": arch.ops}
    metrics, trained = train_stage(folder.train, key, tensorboard=plan.tensorboard, say=say,
                                   fit=lambda row: _train(folder, arch, table, plan, row))
    file = trained.file if trained is not None else None
    exported = export_stage(folder, file, backend=plan.backend, data=plan.dataset,
                            threads=plan.proto.threads, rounds=plan.proto.rounds, say=say)
    refs = references_stage(folder, space, plan, arch, table, table_path, target_ms, exported,
                            metrics)
    write_report([folder.root, *compare], folder.root, title=f"directnas run {folder.root.name}")
    near = NearTarget.of(table)
    table_ref = (near.reference_ms if near is not None else None) or table.meta.get("reference_ms")
    tms = arch.meta.get("target_latency_ms")
    check = target_check_stage(folder.export, space, exported, near, tms,
                               backend=plan.backend, protocol=plan.protocol, say=say)
    append_export_section(folder.report, metrics, exported, tms, table_reference_ms=table_ref,
                          check=check)
    compressed = None
    if plan.compress is not None:
        compressed = compress_stage(folder.compress, trained or folder.train, plan.dataset,
                                    options=plan.compress, say=say)
        append_compress_section(folder.report, compressed)
    return TargetResult(folder.root, target, arch, metrics, exported, check, compressed,
                        refs)


def search_stage(folder: RunFolder, space: SearchSpace, plan: Plan, table: LatencyTable,
                 target_ms: float | None, *, key: dict[str, Any],
                 warmup: Path | None = None) -> Arch:
    """The searched ``Arch`` (``folder.arch``; skipped when done with the same options), with
    curves.json, TensorBoard and the probabilities along the search."""
    if enter_stage(folder.search, key, done=folder.arch.exists()):
        plan.say(f"search: done, reusing {folder.arch}")
        return Arch.load(folder.arch)
    elog = EpochLog(folder.search, "search", tensorboard=plan.tensorboard)
    seed_everything(plan.search_cfg.seed)  # before anything random: the supernet, data, gates
    try:
        found = search_in(folder.search, space, plan.dataset, table,
                          replace(plan.search_cfg, target_latency_ms=target_ms), resume=True,
                          backend=plan.backend, data_label=plan.data_label,
                          dist=plan.dist, progress=plan.progress, on_epoch=elog.search_row,
                          warmup_cache=warmup)
        elog.probabilities(found.history, [list(layer.candidates) for layer in space.layers])
    finally:
        elog.close()
    return found.arch


def _train(folder: RunFolder, arch: Arch, table: LatencyTable, plan: Plan,
           on_epoch: Callable[[int, dict[str, float]], None]) -> TrainResult:
    """The searched net trained from scratch in ``folder.train`` (resuming its checkpoint)."""
    seed_everything(plan.train_cfg.seed)  # before anything random: initial weights, data order
    built = Built(arch.build(), arch, f"searched:{folder.search.name}")
    return train_built(built, plan.dataset, plan.train_cfg, folder=folder.train, lut=table,
                       backend=plan.backend, proto=plan.proto, resume=True,
                       data_label=plan.data_label, progress=plan.progress,
                       on_epoch=on_epoch, dist=plan.dist)


__all__ = ["Plan", "TargetResult", "default_backend", "run", "run_target", "train_stage"]

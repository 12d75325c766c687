"""The whole pipeline in one resumable run folder: profile -> search -> train -> report.

::

    OUT/latency.json          the latency table (profiled once, or a copy of ``table``)
    OUT/search/               the search's outputs, curves.json, tb/ (TensorBoard)
    OUT/train/                the training's outputs (model.pt, metrics.json), curves.json, tb/
    OUT/report.md, report.json, *.png

Several targets give one search + train each in ``OUT/t<target>/`` and a report over all of
them in ``OUT``.  Every stage folder keeps the options it was made with (``stage.json``): a
finished stage is skipped when called again with the same options, and other options are
refused rather than mixing two configs.  ``run_target`` is where one target's pipeline ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from directnas.latency.cache import get_table, make_protocol
from directnas.pipeline.search import search as search_stage
from directnas.pipeline.train import train as train_net_stage
from directnas.data.datasets import Dataset
from directnas.data.sources import DataLike, as_dataset, fit_space, space_summary
from directnas.errors import UserError
from directnas.utils.fileio import read_json, write_json
from directnas.report.writer import write_report
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace, load_space
from directnas.latency.table import LatencyTable
from directnas.latency.near_target import NEAR_NETS, NEAR_WINDOW, NearTarget
from directnas.latency.target import Target, parse_target, resolve_target
from directnas.report.tblog import EpochLog
from directnas.training.trainer import Progress, no_progress

log = logging.getLogger(__name__)
STAGE = "stage.json"
NOT_IN_KEY = {"checkpoint_every", "device"}  # options that do not change a stage's result


@dataclass
class TargetResult:
    folder: Path
    target: Target | None
    arch: Arch
    metrics: dict[str, Any]
    exported: dict[str, Any] | None = None
    check: dict[str, Any] | None = None   # deploy.target_check: the artifact against the target


# ---- stage bookkeeping -----------------------------------------------------------------------
def file_digest(path: str | Path | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] \
        if path and Path(path).is_file() else None


def data_key(data: Any, dataset: Dataset | None = None) -> str:
    """What names the data in a stage key: its path or name, or a digest of in-memory data."""
    if isinstance(data, (str, Path)):
        return str(data)
    assert dataset is not None
    h = hashlib.sha256(dataset.train.labels.numpy().tobytes())
    h.update(repr((dataset.train.shape, dataset.test.shape)).encode())
    return f"in-memory:{h.hexdigest()[:16]}"


def enter_stage(folder: Path, key: dict[str, Any], *, done: bool, name: str = STAGE) -> bool:
    """Record ``key`` (the options of this stage) in ``folder/name``, or check it against the
    recorded one; returns ``done``.  Raises UserError if the folder was made with other options."""
    key = json.loads(json.dumps(key, default=str))
    path = folder / name
    if path.exists():
        old = read_json(path, what="stage file")
        diff = [f"{k}: {old.get(k)!r} -> {key.get(k)!r}" for k in sorted(set(old) | set(key))
                if old.get(k) != key.get(k)]
        if diff:
            raise UserError(f"{folder} was made with other options ({'; '.join(diff[:4])}): re-run with "
                            f"the same options, use a new --out, or delete {folder} to redo it")
    elif done:
        raise UserError(f"{folder} holds outputs not made by this command: use a new --out")
    else:
        write_json(path, key)
    return done


def options_key(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that change a stage's result, with config files named by their content."""
    key = {k: v for k, v in options.items() if k not in NOT_IN_KEY and not callable(v)}
    if key.get("config_file"):
        key["config_digest"] = file_digest(key["config_file"])
    return key


def train_stage(folder: Path, model: Any, data: DataLike, *, options: Mapping[str, Any],
                tensorboard: bool, key_extra: Mapping[str, Any],
                say: Callable[[str], None] = log.info,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """Train ``model`` in ``folder`` (skipped when done with the same options), with
    curves.json + TensorBoard; returns its metrics."""
    key = {**options_key(options), **key_extra}
    if enter_stage(folder, key, done=(folder / "metrics.json").exists()):
        say(f"train: done, reusing {folder / 'metrics.json'}")
        return read_json(folder / "metrics.json")
    elog = EpochLog(folder, "train", tensorboard=tensorboard)

    def row(e: int, r: dict[str, float]) -> None:
        elog.train_row(e, r)
        if on_epoch is not None:
            on_epoch(e, r)

    try:
        metrics = train_net_stage(model, data, out=folder, resume=True, on_epoch=row, **options).metrics
        elog.final({k: metrics[k] for k in ("test_accuracy", "latency_ms") if k in metrics},
                   step=len(elog.rows))
    finally:
        elog.close()
    return metrics


# ---- the pipeline ----------------------------------------------------------------------------
def _label(target: Target | None) -> str:
    return "none" if target is None else target if isinstance(target, str) else f"{target:g}"


def run(space: str | Path | SearchSpace = "fashion-mnist", data: DataLike = "fashion-mnist", *,
        out: str | Path, target_latency: Target | Sequence[Target] | None = None,
        test: DataLike | None = None, backend: str | None = None, table: str | Path | None = None,
        protocol: Mapping[str, Any] | None = None, device: str = "auto",
        input_size: int | None = None, search: Mapping[str, Any] | None = None,
        train: Mapping[str, Any] | None = None, compare: Sequence[str | Path] = (),
        tensorboard: bool = True, say: Callable[[str], None] = log.info,
        progress: Progress = no_progress, near_nets: int = NEAR_NETS) -> list[TargetResult]:
    """Profile, search, train and report for each target in ``out``; call it again to resume.

    ``search`` / ``train``: keyword options of ``directnas.search`` / ``directnas.train`` (their config
    fields, ``quick``, ``seed``, ``config_file``, ...).  ``say`` gets one line per stage.
    Each stage seeds at its entry (``search`` and ``train`` with their ``seed``), so a run
    re-run from any stage boundary trains the same net as an uninterrupted one.
    ``near_nets``: when the table is profiled here, that many whole nets predicted near each
    target are timed and the table re-anchored on them before the search
    (``latency.near_target``; 0: off).
    """
    targets = target_latency if isinstance(target_latency, (list, tuple)) else [target_latency]
    targets = list(dict.fromkeys(None if t is None else parse_target(t) for t in targets))
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: give a folder path")
    base = load_space(space) if not isinstance(space, SearchSpace) else space
    dataset = as_dataset(data, test, size=input_size or base.input_size)
    fitted = fit_space(base, dataset, input_size=input_size)
    common = {"device": device, "protocol": dict(protocol or {}), "progress": progress}
    out.mkdir(parents=True, exist_ok=True)
    table_path = profile_stage(out, fitted, table=table, backend=backend, protocol=protocol,
                               fitted=fitted != base, say=say)
    stage_data = {"data": data_key(data, dataset), **space_summary(fitted),
                  "space_fingerprint": fitted.fingerprint()}
    results = []
    for t in targets:
        folder = out if len(targets) == 1 else out / f"t{_label(t)}"
        if len(targets) > 1:
            say(f"== target {_label(t)}{'' if isinstance(t, str) or t is None else ' ms'} -> {folder}")
        ttable, tt = table_path, t
        if table is None and t is not None and near_nets > 0:  # profiled here: re-anchor at the target
            ttable = near_stage(folder, fitted, table_path, t, backend=backend, protocol=protocol,
                                nets=near_nets, say=say)
            # a relative target (2x the fastest net) was resolved there, on the fastest net as
            # timed beside the near-target nets, and those nets were timed near it
            tt = resolve_target(t, fitted, LatencyTable.load(ttable))
        results.append(run_target(folder, fitted, dataset, tt, ttable,
                                  search={**(search or {}), **common, "backend": backend},
                                  train={**(train or {}), **common, "backend": backend},
                                  stage_data=stage_data, compare=compare,
                                  tensorboard=tensorboard, say=say))
    if len(targets) > 1:
        write_report([*(r.folder for r in results), *compare], out, title=f"directnas run {out.name}")
    return results


def profile_stage(out: Path, space: SearchSpace, *, table: str | Path | None, backend: str | None,
                  protocol: Mapping[str, Any] | None, fitted: bool,
                  say: Callable[[str], None]) -> Path:
    key = {**(protocol or {}), "backend": backend, "space": space.fingerprint(),
           "latency_table": None if table is None else str(table), "table_digest": file_digest(table)}
    path = out / "latency.json"
    if enter_stage(out, key, done=path.exists(), name="latency_stage.json"):
        say(f"latency table: reusing {path}")
        return path
    get_table(space, table=table, backend=backend, proto=make_protocol(protocol),
                  fitted=fitted).save(path)
    say(f"latency table: {path}")
    return path


def near_stage(folder: Path, space: SearchSpace, table_path: Path, target: Target, *,
               backend: str | None, protocol: Mapping[str, Any] | None, nets: int,
               say: Callable[[str], None]) -> Path:
    """``folder/latency_near.json``: the table re-anchored at ``target`` (``anchor_target``; a
    relative target is resolved there, on the fastest net as timed)."""
    from directnas.latency.near_target import anchor_target

    key = {**(protocol or {}), "backend": backend, "table_digest": file_digest(table_path),
           "target": target, "nets": nets, "anchor": "fastest-timed"}
    path = folder / "latency_near.json"
    folder.mkdir(parents=True, exist_ok=True)
    if enter_stage(folder, key, done=path.exists(), name="near_stage.json"):
        say(f"latency near the target: reusing {path}")
        return path
    t = LatencyTable.load(table_path)
    refined, ms = anchor_target(t, space, target, backend=backend or "torch-cpu",
                                proto=make_protocol(protocol), n=nets)
    refined.save(path)
    near = NearTarget.of(refined)
    if near is None:
        say(f"latency near the target: no net of the space is predicted near {ms:.3f} ms; "
            "the table is used as profiled")
        return path
    ratios = [r.ratio for r in near.nets if r.ratio is not None]
    if near.resolved is not None:
        fast_ms = near.fastest.predicted_ms if near.fastest is not None else float("nan")
        say(f"target {target}: the fastest net of the space runs at {near.resolved.fastest_measured_ms:.3f} ms "
            f"here, timed (the profiled table says {fast_ms:.3f} ms), so "
            f"T = {ms:.4f} ms (on the profiled table it would be {near.resolved.profiled_target_ms:.4f} ms)")
    say(f"latency near the target: {len(ratios)} nets near {ms:.3f} ms run at "
        f"{min(ratios):.2f}-{max(ratios):.2f}x their prediction (median {near.scale:.2f}, "
        f"noise floor {100 * float(near.noise_floor or 0):.1f} %): table re-anchored, {path}")
    return path


def run_target(folder: Path, space: SearchSpace, dataset: Dataset, target: Target | None,
               table: Path, *, search: Mapping[str, Any], train: Mapping[str, Any],
               stage_data: Mapping[str, Any], compare: Sequence[str | Path], tensorboard: bool,
               say: Callable[[str], None]) -> TargetResult:
    """One target: search -> train -> report in ``folder``."""
    sdir = folder / "search"
    skey = {**options_key(search), **stage_data, "target_latency_ms": target}
    if enter_stage(sdir, skey, done=(sdir / "arch.json").exists()):
        say(f"search: done, reusing {sdir / 'arch.json'}")
    else:
        elog = EpochLog(sdir, "search", tensorboard=tensorboard)
        try:
            search_stage(space, dataset, target_latency=target, table=table, out=sdir, resume=True,
                       on_epoch=elog.search_row, **search)
            summary = read_json(sdir / "search.json")
            elog.probabilities(summary.get("history", []), summary.get("layer_names", []))
        finally:
            elog.close()
    arch = Arch.load(sdir / "arch.json")
    metrics = train_stage(folder / "train", sdir / "arch.json", dataset,
                          options={**train, "table": table}, tensorboard=tensorboard,
                          key_extra={**stage_data, "arch": arch.ops}, say=say)
    # ---- the trained net is folder/train/model.pt: ship it for the runtime searched for ----
    from directnas.deploy.export import export_stage

    proto = dict(search.get("protocol") or {})
    exported = export_stage(folder / "export", folder / "train", backend=search.get("backend"),
                            data=dataset, threads=int(proto.get("threads", 1)),
                            rounds=int(proto.get("rounds", 5)), say=say)
    write_report([folder, *compare], folder, title=f"directnas run {folder.name}")
    meta = LatencyTable.load(table).meta
    near = NearTarget.of(meta)
    table_ref = (near.reference_ms if near is not None else None) or meta.get("reference_ms")
    target_ms = arch.meta.get("target_latency_ms")
    check = target_check_stage(folder / "export", space, exported, near,
                               target_ms, backend=search.get("backend"),
                               protocol=proto, say=say)
    append_export_section(folder / "report.md", metrics, exported, target_ms,
                          table_reference_ms=table_ref, check=check)
    return TargetResult(folder, target, arch, metrics, exported, check)


def target_check_stage(folder: Path, space: SearchSpace, exported: Mapping[str, Any],
                       near: NearTarget | None, target_ms: float | None, *,
                       backend: str | None, protocol: Mapping[str, Any],
                       say: Callable[[str], None]) -> dict[str, Any] | None:
    """``folder/target_check.json``: the artifact timed again beside the near-target session's
    nets, and judged against the target at the machine's speed now (``deploy.target_check``).
    None when the table was not re-anchored here or no target was given."""
    from directnas import runtimes
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


def append_export_section(report: Path, metrics: Mapping[str, Any], exported: Mapping[str, Any],
                          target_ms: float | None, *, table_reference_ms: float | None = None,
                          check: Mapping[str, Any] | None = None) -> None:
    """The shipped artifact beside the target and the prediction, in report.md; with the
    reference net's latency when the table was measured, also in reference units (the machine's
    speed drifts between sessions, and the reference net is timed in both); with ``check``
    (``target_check_stage``), against the target at the machine's speed at export."""
    from directnas.utils.fileio import write_text

    t = target_ms
    rows = ["", "## Shipped artifact", "",
            "| artifact | runtime | target | predicted | measured (artifact) | noise floor | "
            "top-1 agreement | accuracy |", "|---|---|---|---|---|---|---|---|",
            f"| {exported['path']} | {exported['runtime_version']} | "
            f"{'-' if t is None else f'{t:.3f} ms'} | "
            f"{metrics.get('predicted_latency_ms', float('nan')):.3f} ms | "
            f"{exported['latency_ms']:.3f} ms (batch {exported['latency_batch_size']}, "
            f"{exported['latency_threads']} thread(s)) | {100 * exported['noise_floor']:.1f} % | "
            f"{100 * exported['top1_agreement']:.2f} % | {100 * exported['accuracy']:.2f} % |", ""]
    if t:
        r = exported["latency_ms"] / t
        lo, hi = NEAR_WINDOW
        line = (f"The artifact runs at **{r:.2f} T** of its target "
                f"({'inside' if lo <= r <= hi else 'outside'} [{lo:.2f} T, {hi:.2f} T])")
        ref = exported.get("reference_ms")
        if ref and table_reference_ms:
            u = r * table_reference_ms / ref
            line += (f"; in units of the reference net (timed at {table_reference_ms:.3f} ms with the "
                     f"table, {ref:.3f} ms with the artifact) at **{u:.2f} T**")
        rows += [line + ".", ""]
    if check:
        from directnas.deploy.target_check import describe

        rows += ["### Target held?", "", describe(check), "",
                 "A target in ms holds at the speed the machine ran when it was measured; the nets "
                 "it was measured on, timed again beside the artifact, give that speed now "
                 "(`export/target_check.json`).", ""]
    text = report.read_text() if report.exists() else ""
    write_text(report, text.rstrip("\n") + "\n" + "\n".join(rows))


def append_compress_section(report: Path, m: Mapping[str, Any]) -> None:
    """The compression stage (``run --compress-*``) in report.md: ratio, accuracy, artifact."""
    from directnas.utils.fileio import write_text

    text = report.read_text() if report.exists() else ""
    head = "## Compressed"
    text = text.split("\n" + head + "\n")[0]  # re-running replaces the section
    r = m.get("recipe") or {}
    goal = (f"--target-ratio {r['target_ratio']:g}" if r.get("target_ratio") is not None
            else f"--max-loss {100 * r['max_loss']:g}" if r.get("max_loss") is not None else "")
    rows = ["", head, "",
            f"`directnas compress --method {','.join(m['methods'])} {goal}` (compress/metrics.json)",
            "", "| ratio | bytes | accuracy before -> after | artifact | runtime | latency | noise floor |",
            "|---|---|---|---|---|---|---|"]
    arts = list((m.get("export") or {}).values()) or [None]
    for a in arts:
        rows.append(f"| {m['compression_ratio']:.1f}x | {m['size_bytes_before']} -> "
                    f"{m['size_bytes_after']} | {100 * m['accuracy_before']:.2f} -> "
                    f"{100 * m['accuracy_after']:.2f} % | "
                    + ("- | - | - | - |" if a is None else
                       f"{a['path']} | {a['runtime_version']} | {a['latency_ms']:.3f} ms | "
                       f"{100 * a['noise_floor']:.1f} % |"))
    write_text(report, text.rstrip("\n") + "\n" + "\n".join(rows) + "\n")

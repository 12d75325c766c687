"""The run's latency stages: the profiled table (``latency.json``) and, per target, the table
re-anchored on whole nets timed near the target (``latency_near.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from directnas.latency.cache import get_table, make_protocol
from directnas.latency.near_target import NearTarget
from directnas.latency.table import LatencyTable
from directnas.latency.target import Target
from directnas.pipeline.runfolder import RunFolder
from directnas.pipeline.stages import enter_stage, file_digest
from directnas.space.space import SearchSpace
from directnas.training.trainer import Progress


def profile_stage(run: RunFolder, space: SearchSpace, *, table: str | Path | None,
                  backend: str | None, protocol: Mapping[str, Any] | None, fitted: bool,
                  say: Callable[[str], None], progress: Progress | None = None) -> LatencyTable:
    """``run.latency``: the user's table (checked against ``space``) or this device's, once
    (``progress``: a bar over the profiling rounds)."""
    key = {**(protocol or {}), "backend": backend, "space": space.fingerprint(),
           "latency_table": None if table is None else str(table),
           "table_digest": file_digest(table)}
    path = run.latency
    if enter_stage(run.root, key, done=path.exists(), name="latency_stage.json"):
        say(f"latency table: reusing {path}")
        return LatencyTable.load(path)
    lut = get_table(space, table=table, backend=backend, proto=make_protocol(protocol),
                    fitted=fitted, progress=progress)
    lut.save(path)
    say(f"latency table: {path}")
    return lut


def near_stage(run: RunFolder, space: SearchSpace, table: LatencyTable, table_path: Path,
               target: Target, *, backend: str | None, protocol: Mapping[str, Any] | None,
               nets: int, say: Callable[[str], None],
               progress: Progress | None = None) -> LatencyTable:
    """``run.near_latency``: ``table`` (saved at ``table_path``) re-anchored at ``target``
    (``anchor_target``; a relative target is resolved there, on the fastest net as timed)."""
    from directnas.latency.near_target import anchor_target

    key = {**(protocol or {}), "backend": backend, "table_digest": file_digest(table_path),
           "target": target, "nets": nets, "anchor": "fastest-timed"}
    path = run.near_latency
    run.root.mkdir(parents=True, exist_ok=True)
    if enter_stage(run.root, key, done=path.exists(), name="near_stage.json"):
        say(f"latency near the target: reusing {path}")
        return LatencyTable.load(path)
    bar = (lambda it: progress(it, "time near-target nets", len(it))) if progress else \
        (lambda it: it)
    refined, ms = anchor_target(table, space, target, backend=backend or "torch-cpu",
                                proto=make_protocol(protocol), n=nets, progress=bar)
    refined.save(path)
    for line in near_lines(refined, target, ms, path):
        say(line)
    return refined


def near_lines(refined: LatencyTable, target: Target, ms: float, path: Path) -> list[str]:
    """What the re-anchoring found: the target as resolved, and how fast the near nets ran."""
    near = NearTarget.of(refined)
    if near is None:
        return [f"latency near the target: no net of the space is predicted near {ms:.3f} ms; "
                "the table is used as profiled"]
    ratios = [r.ratio for r in near.nets if r.ratio is not None]
    lines = []
    if near.resolved is not None:
        fast_ms = near.fastest.predicted_ms if near.fastest is not None else float("nan")
        lines.append(f"target {target}: the fastest net of the space runs at "
                     f"{near.resolved.fastest_measured_ms:.3f} ms here, timed (the profiled table "
                     f"says {fast_ms:.3f} ms), so T = {ms:.4f} ms (on the profiled table it would "
                     f"be {near.resolved.profiled_target_ms:.4f} ms)")
    return lines + [f"latency near the target: {len(ratios)} nets near {ms:.3f} ms run at "
                    f"{min(ratios):.2f}-{max(ratios):.2f}x their prediction (median "
                    f"{near.scale:.2f}, noise floor {100 * float(near.noise_floor or 0):.1f} %): "
                    f"table re-anchored, {path}"]

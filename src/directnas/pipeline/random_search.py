"""The random-search baseline as a library call: archs drawn under the latency target, each
trained briefly, the best kept; same table and budget as a search, outputs in a run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from directnas.config import resolve_config
from directnas.data.sources import as_dataset
from directnas.latency.cache import TableLike, get_table, make_protocol
from directnas.latency.target import Target, check_reachable, resolve_target
from directnas.nas import random_search as rs
from directnas.pipeline.checks import check_entry
from directnas.pipeline.outdir import claimed
from directnas.pipeline.runfolder import save_resolved
from directnas.space.space import SearchSpace, load_space
from directnas.utils.seeding import check_seed

QUICK = {"budget_s": 60.0, "steps_per_arch": 30, "valid_size": 1000}


@dataclass
class RandomSearchRun:
    result: rs.RandomSearchResult  # the best arch and every candidate
    summary: dict[str, Any]        # random_search.json
    config: rs.RandomSearchConfig  # as resolved (the target in ms)


def random_search(space: str | Path | SearchSpace, data: str | Path, *, out: str | Path,
                  target_latency: Target | None = None, table: TableLike | None = None,
                  backend: str | None = None, protocol: Mapping[str, Any] | None = None,
                  quick: bool = False, at_most: bool = False, threads: int | None = None,
                  config_file: str | Path | None = None,
                  on_candidate: Callable[[int, rs.Candidate], None] | None = None,
                  progress: Callable[..., Any] | None = None, force: bool = False,
                  **config: Any) -> RandomSearchRun:
    """Random search of ``space`` on ``data`` for ``target_latency`` (ms or ``"1.5x"``) in
    ``out``.  ``config``: ``RandomSearchConfig`` fields; ``quick`` a smoke budget the YAML file
    cannot override; ``at_most``: accept any arch at or below the target.  Every input is
    checked before any work; ``out`` must be new, empty or a random-search folder (``force``:
    any folder that is no other command's)."""
    given = {k: v for k, v in config.items() if v is not None}
    cfg = resolve_config(rs.RandomSearchConfig, yaml_path=config_file, what="random-search",
                         overrides={**QUICK, **given} if quick else given)
    if at_most:
        cfg.tolerance = None
    if threads is not None:
        cfg.threads = threads
    check_seed(cfg.seed)
    check_entry("random-search", out=out, force=force, backend=backend, targets=[target_latency])
    proto = make_protocol(protocol)
    space = load_space(space) if not isinstance(space, SearchSpace) else space
    dataset = as_dataset(data)
    out = Path(out)
    lut = get_table(space, table=table, backend=backend, proto=proto, progress=progress)
    if target_latency is not None:
        cfg.target_latency_ms = resolve_target(target_latency, space, lut)
        check_reachable(cfg.target_latency_ms, space, lut)
    with claimed(out, "random-search"):
        lut.save(out / "latency.json")
        save_resolved(out, "random_search_config.json", cfg,
                      {"space": space.name, "data": str(data), "backend": backend or "torch-cpu"})
        result = rs.random_search(space, dataset, lut, cfg, on_candidate=on_candidate)
        return RandomSearchRun(result, rs.write_outputs(out, result, cfg, space), cfg)

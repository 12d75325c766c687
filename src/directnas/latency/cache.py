"""The latency table of a space on a backend: the user's (checked), or this device's cached one,
profiled where the cache lacks ops; ``profile`` and ``measure`` as library calls."""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from directnas.errors import UserError
from directnas.latency.measure import Protocol, device_meta, measure_net, profile_space
from directnas.latency.table import LatencyTable
from directnas.space.space import SearchSpace, load_space

log = logging.getLogger(__name__)
SpaceLike = SearchSpace | str | Path
TableLike = LatencyTable | str | Path
Bar = Callable[..., Any]


def cache_dir() -> Path:
    """Where this device's profiled tables are kept (``DIRECTNAS_CACHE`` overrides)."""
    return Path(os.environ.get("DIRECTNAS_CACHE", Path.home() / ".cache" / "directnas"))


def cached_table(space: SearchSpace, *, backend: str, proto: Protocol,
                 progress: Bar | None = None) -> LatencyTable:
    """This device's table of ``space`` for ``backend`` and ``proto``: from the cache, profiled
    (and cached) where the cache lacks ops."""
    meta = device_meta(backend, proto)
    # everything that changes a measured value: device, protocol (statistic and clock included)
    # and the versions of the runtime; not the time of measuring
    key = "|".join(f"{k}={meta[k]}" for k in sorted(meta) if k != "measured_at") \
        + "|" + space.fingerprint()
    path = cache_dir() / f"latency-{space.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"
    table = LatencyTable.load(path) if path.exists() else None
    if table is None or table.missing(table.required_keys(space)):
        log.info("profiling %s ops on %s (cached at %s)", space.name, backend, path)
        bar = (lambda it: progress(it, "profile ops", len(it))) if progress else None
        table = profile_space(space, backend=backend, proto=proto, existing=table,
                              **({"progress": bar} if bar else {}))
        table.save(path)
    else:
        log.info("reusing cached latency table %s", path)
    return table


def make_protocol(protocol: Mapping[str, Any] | None = None) -> Protocol:
    """``Protocol`` from keywords (``threads``, ``batch_size``, ``repeats``, ``warmup``,
    ``dtype``, ``stat``, ``clock``, ``channels_last``); unknown names and counts < 1 refused."""
    given = {k: v for k, v in (protocol or {}).items() if v is not None}
    names = {f.name for f in fields(Protocol)}
    if set(given) - names:
        raise UserError(f"unknown latency option(s) {sorted(set(given) - names)}; known: {sorted(names)}")
    proto = Protocol(**given)
    for name, low, flag in (("threads", 1, "--threads 1"), ("batch_size", 1, "--latency-batch 1"),
                            ("repeats", 1, "--repeats 30"), ("rounds", 1, "--rounds 5"),
                            ("warmup", 0, "--warmup 10")):
        v = getattr(proto, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise UserError(f"latency option {name} must be an integer >= {low}, got {v!r}: "
                            f"pass e.g. {flag}")
    return proto


def get_table(space: SearchSpace, *, table: TableLike | None, backend: str | None,
              proto: Protocol, fitted: bool = False, progress: Bar | None = None) -> LatencyTable:
    """``table`` (checked: it covers ``space``, was measured on ``backend`` if one is given), or
    this device's cached table, profiled where it lacks ops.  ``fitted``: the space was fitted
    to the data, so a table of this device may lack its stem or classifier; they are measured."""
    measure_on = backend or "torch-cpu"
    if table is None:
        return cached_table(space, backend=measure_on, proto=proto, progress=progress)
    where = str(table) if not isinstance(table, LatencyTable) else "given"
    t = table if isinstance(table, LatencyTable) else LatencyTable.load(table)
    t.check_entries(where)
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


def measure(net: nn.Module, input_shape: tuple[int, int, int], *, backend: str = "torch-cpu",
            **protocol: Any) -> dict[str, float]:
    """End-to-end latency of ``net`` on ``backend``; timed on a float32 CPU copy, so the
    caller's net (its device, dtype and memory format) is never changed."""
    clone = copy.deepcopy(net).cpu().float().to(memory_format=torch.contiguous_format)
    return measure_net(clone, input_shape, backend=backend, proto=make_protocol(protocol))



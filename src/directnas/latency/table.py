"""LatencyTable: op signature -> median latency (ms), with the device/backend it was measured on.

JSON layout (``schema_version: 1``)::

    {"schema_version": 1,
     "meta": {"backend": "torch-cpu", "device": "...", "threads": 2, "batch_size": 1, ...},
     "entries": {"mbconv:k5:e6:in32:out32:s1:hw14": {"ms": 0.41, "spread_ms": 0.02}, ...},
     "correction": {...}}      # optional: a learned correction (hardware/correction.py)

``zero`` always costs 0 ms and is never stored.  ``space_latencies`` (what the search and the
predictor use) applies the correction when the table has one.  An entry ``L{i}:<key>`` (written
by ``latency fit``) prices ``<key>`` at searchable layer ``i`` only and wins over ``<key>`` there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from directnas.errors import UserError
from directnas.utils.fileio import read_json, write_json
from directnas.latency.correction import Correction
from directnas.space.ops import ZERO
from directnas.space.space import SearchSpace

LUT_SCHEMA_VERSION = 1
log = logging.getLogger(__name__)


@dataclass
class LatencyTable:
    meta: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, dict[str, float]] = field(default_factory=dict)
    correction: Correction | None = None

    def ms(self, key: str) -> float:
        if key == ZERO:
            return 0.0
        return float(self.entries[key]["ms"])

    def layer_ms(self, index: int, key: str) -> float:
        """``key`` at searchable layer ``index``: a layer-specific entry ``L{index}:<key>`` (fitted
        tables, where layers of equal shape differ) wins over the plain ``key``."""
        lk = f"L{index}:{key}"
        return float(self.entries[lk]["ms"]) if key != ZERO and lk in self.entries else self.ms(key)

    def __contains__(self, key: str) -> bool:
        return key == ZERO or key in self.entries

    def missing(self, keys: list[str]) -> list[str]:
        return [k for k in keys if k not in self]

    def required_keys(self, space: SearchSpace) -> list[str]:
        keys = list(space.fixed_keys())
        for layer in space.layers:
            keys += space.layer_keys(layer)
        return list(dict.fromkeys(k for k in keys if k != ZERO))

    def check_covers(self, space: SearchSpace, *, path: str | Path | None = None) -> None:
        """One-line error naming the missing entries and the command that fills them."""
        miss = self.missing(self.required_keys(space))
        if miss:
            shown = ", ".join(miss[:3]) + (f" and {len(miss) - 3} more" if len(miss) > 3 else "")
            where = f" {path}" if path else ""
            raise UserError(
                f"latency table{where} lacks {len(miss)} op(s) of space {space.name!r} ({shown}): "
                f"run 'directnas profile --space {space.name} --out TABLE.json' to measure them")

    def space_latencies(self, space: SearchSpace, *,
                        corrected: bool = True) -> tuple[float, list[list[float]]]:
        """(fixed ms, per layer: ms of every candidate) for a space, corrected if the table has
        a correction (and ``corrected``)."""
        self.check_covers(space)
        fixed = sum(self.ms(k) for k in space.fixed_keys())
        per_layer = [[self.layer_ms(l.index, k) for k in space.layer_keys(l)] for l in space.layers]
        c = self.correction if corrected else None
        if c is None:
            return fixed, per_layer
        return c.fixed_ms(fixed), [
            [c.op_ms(l.stage, ms, zero=k == ZERO) for k, ms in zip(space.layer_keys(l), row)]
            for l, row in zip(space.layers, per_layer)]

    def merge(self, other: "LatencyTable") -> "LatencyTable":
        """Entries of both (``other`` wins); a correction is dropped (it fits the old entries)."""
        if self.correction is not None or other.correction is not None:
            log.warning("merged table drops the learned correction: refit it on the merged table")
        return LatencyTable(dict(self.meta), {**self.entries, **other.entries})

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.entries, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = {"schema_version": LUT_SCHEMA_VERSION, "meta": self.meta, "entries": self.entries}
        if self.correction is not None:
            d["correction"] = self.correction.to_dict()
        return d

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        d = read_json(path, what="latency table")
        if not isinstance(d, dict) or "entries" not in d:
            raise UserError(f"latency table {path} has no 'entries': write it with 'directnas profile' "
                            "or convert it with 'directnas latency import'")
        if d.get("schema_version") != LUT_SCHEMA_VERSION:
            raise UserError(f"latency table {path} has schema_version {d.get('schema_version')}, "
                            f"expected {LUT_SCHEMA_VERSION}")
        entries = d["entries"]
        if not isinstance(entries, dict):
            raise UserError(f"latency table {path}: 'entries' must map op keys to {{\"ms\": ...}}: "
                            "regenerate it with 'directnas profile'")
        corr = Correction.from_dict(d["correction"]) if d.get("correction") is not None else None
        table = cls(dict(d.get("meta", {})), entries, corr)
        table.check_entries(path)
        return table

    def check_entries(self, where: str | Path | None = None) -> None:
        """Every entry holds a finite, non-negative 'ms' (a NaN would make alpha NaN mid-search);
        the entry at fault is named."""
        for k, v in self.entries.items():
            ms = v.get("ms") if isinstance(v, dict) else None
            if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not ms >= 0 \
                    or not math.isfinite(ms):
                raise UserError(f"latency table {where or '(given)'}: entry {k!r} needs a finite, "
                                f"non-negative 'ms', got {ms!r}: re-measure it (directnas profile) "
                                "or fix the entry")

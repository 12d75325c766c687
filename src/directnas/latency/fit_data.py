"""Whole-network latency measurements: architectures <-> op indices, CSV rows.

Part of ``hardware.fit`` (whose docstring describes the models); import from there.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from directnas.errors import UserError
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace


FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")


# ---- architectures <-> op indices ------------------------------------------------------------
def arch_from_op_indices(space: SearchSpace, indices: Sequence[int]) -> Arch:
    """The Arch of one ``op_idx_list`` row: index ``i`` of layer ``l`` = ``l``'s i-th candidate."""
    if len(indices) != len(space.layers):
        raise UserError(f"op_idx_list has {len(indices)} entries but space {space.name!r} has "
                        f"{len(space.layers)} searchable layers: use the matching space")
    ops = []
    for layer, i in zip(space.layers, indices):
        if not 0 <= int(i) < len(layer.candidates):
            raise UserError(f"op index {i} at layer {layer.index} is out of range "
                            f"(0..{len(layer.candidates) - 1}) for space {space.name!r}")
        ops.append(layer.candidates[int(i)])
    return Arch(space, ops)


def op_indices(arch: Arch) -> list[int]:
    return [layer.candidates.index(op) for layer, op in zip(arch.space.layers, arch.ops)]


def parse_rows(spec: str | None) -> tuple[int, int | None]:
    """``"A:B"`` -> (A, B): data rows A inclusive to B exclusive, 0-based; None = all."""
    if not spec:
        return 0, None
    try:
        a, b = spec.split(":")
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else None
    except ValueError:
        raise UserError(f"--rows {spec!r} is not A:B (e.g. 0:4000)") from None
    if lo < 0 or (hi is not None and hi <= lo):
        raise UserError(f"--rows {spec!r} must satisfy 0 <= A < B")
    return lo, hi


@dataclass
class Measurements:
    """Op-index matrix (N, layers), latency (N,) in ms, and the CSV's arch ids."""

    idx: np.ndarray
    ms: np.ndarray
    arch_ids: list[str]


def read_measurements(path: str | Path, space: SearchSpace, column: str,
                      rows: tuple[int, int | None] = (0, None)) -> Measurements:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"measurements file {path} does not exist: give a CSV of architectures "
                        "and latencies (see docs/latency-fit.md)")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if column not in fields:
            raise UserError(f"measurements {path} have no column {column!r}; columns: "
                            f"{', '.join(c for c in fields if c not in ('op_idx_list', 'ops', 'arch_id'))}")
        if "op_idx_list" not in fields and "ops" not in fields:
            raise UserError(f"measurements {path} need an 'op_idx_list' or an 'ops' column")
        data = list(reader)
    lo, hi = rows
    hi = len(data) if hi is None else hi
    if hi > len(data):
        raise UserError(f"--rows {lo}:{hi} goes past the {len(data)} data rows of {path}")
    sel = data[lo:hi]
    idx, ms, ids = [], [], []
    for n, r in enumerate(sel, start=lo):
        try:
            if r.get("op_idx_list"):
                ind = [int(v) for v in r["op_idx_list"].replace(",", " ").split()]
            else:
                ind = op_indices(Arch(space, r["ops"].split()))
            val = float(r[column])
        except (ValueError, TypeError):
            raise UserError(f"measurements {path}: data row {n} is malformed (op list or "
                            f"{column!r})") from None
        arch_from_op_indices(space, ind)  # validates
        if not math.isfinite(val) or val <= 0:
            raise UserError(f"measurements {path}: data row {n} has latency {val!r}; need > 0 ms")
        idx.append(ind)
        ms.append(val)
        ids.append(r.get("arch_id", str(n)))
    if not idx:
        raise UserError(f"measurements {path}: no data rows selected by --rows {lo}:{hi}")
    return Measurements(np.array(idx, dtype=np.int64), np.array(ms, dtype=float), ids)

"""NAS-Bench-Macro: the preset's architectures as the benchmark's 8-digit strings, and its table.

NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with Monte-Carlo Tree Search",
CVPR 2021) trained every net of a macro space three times on CIFAR-10.  The ``nas-bench-macro``
preset builds those nets layer for layer (its docstring lists them).  An architecture is an
8-character string, digit ``i`` the op of searchable layer ``i``: ``0`` identity (``skip``: a 1x1
conv + BN projection on a stage's first, stride-2 layer), ``1`` MBConv e3 k3 (``k3_e3``), ``2``
MBConv e6 k5 (``k5_e6``).  Digits map to op names, not to positions in a candidate list.

The table (``nas-bench-macro_cifar10.json``: arch string -> test accuracies, mean, std, params,
FLOPs) is read from a path the caller gives; nothing here downloads it.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from directnas.errors import UserError
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace, load_space
from directnas.utils.fileio import read_json

SPACE_NAME = "nas-bench-macro"
#: Digit -> op name of the preset (the benchmark's 0 = identity, 1 = MBConv e3 k3, 2 = e6 k5).
DIGIT_OPS: tuple[str, ...] = ("skip", "k3_e3", "k5_e6")
NUM_LAYERS = 8


def bench_space() -> SearchSpace:
    """The ``nas-bench-macro`` preset."""
    return load_space(SPACE_NAME)


@functools.lru_cache(maxsize=1)
def _bench_fingerprint() -> str:
    return bench_space().fingerprint()


def _check_space(space: SearchSpace, what: str) -> None:
    if space.fingerprint() != _bench_fingerprint():
        raise UserError(f"{what} is of space {space.name!r}, not of the {SPACE_NAME!r} preset: "
                        f"bench strings describe only that space (load_space({SPACE_NAME!r}))")


def to_bench_string(arch: Arch) -> str:
    """The benchmark's 8-digit string of ``arch`` (an Arch of the ``nas-bench-macro`` preset)."""
    _check_space(arch.space, "the architecture")
    return "".join(str(DIGIT_OPS.index(op)) for op in arch.ops)


def from_bench_string(space: SearchSpace, s: str) -> Arch:
    """The Arch of ``space`` (the ``nas-bench-macro`` preset) written ``s`` in the benchmark."""
    _check_space(space, "the space given")
    if not isinstance(s, str) or len(s) != NUM_LAYERS or any(c not in "012" for c in s):
        raise UserError(f"NAS-Bench-Macro arch string {s!r} is invalid: it has {NUM_LAYERS} "
                        "digits, each 0 (identity), 1 (MBConv e3 k3) or 2 (MBConv e6 k5)")
    return Arch(space, [DIGIT_OPS[int(c)] for c in s])


def all_bench_strings() -> Iterator[str]:
    """The 3^8 = 6,561 arch strings of the space, in lexicographic order."""
    return ("".join(t) for t in itertools.product("012", repeat=NUM_LAYERS))


@dataclass(frozen=True)
class BenchEntry:
    """One net of the table: test accuracies (%) of its three trainings, their mean and std,
    its parameter count and its multiply-accumulates (convs and linear, 32x32 input)."""

    test_acc: tuple[float, ...]
    mean_acc: float
    std: float
    params: int
    flops: int


def load_bench(path: str | Path) -> dict[str, BenchEntry]:
    """The table at ``path`` (``nas-bench-macro_cifar10.json``): arch string -> BenchEntry."""
    d = read_json(path, what="NAS-Bench-Macro table")
    if not isinstance(d, dict) or not d:
        raise UserError(f"NAS-Bench-Macro table {path} is not a map of arch strings to entries")
    out: dict[str, BenchEntry] = {}
    for key, e in d.items():
        try:
            if len(key) != NUM_LAYERS or any(c not in "012" for c in key):
                raise ValueError(f"key {key!r} is not an arch string")
            out[key] = BenchEntry(
                test_acc=tuple(float(a) for a in e["test_acc"]), mean_acc=float(e["mean_acc"]),
                std=float(e["std"]), params=int(e["params"]), flops=int(e["flops"]))
        except (TypeError, KeyError, ValueError) as err:
            raise UserError(f"NAS-Bench-Macro table {path}: entry {key!r} is malformed "
                            f"({type(err).__name__}: {err}): use the benchmark's "
                            "nas-bench-macro_cifar10.json") from None
    return out

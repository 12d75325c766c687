"""Helpers the tests share: the repository's paths and small generated image data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from directnas.latency.table import LatencyTable
from directnas.space.space import SearchSpace

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # the project's shared data, beside the repository
SHARED_DATA = SHARED / "data"
SCRIPTS = REPO / "scripts"
SRC = REPO / "src" / "directnas"
CLI_WITH_CALLBACKS = Path(__file__).with_name("cli_with_callbacks.py")


def write_idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def make_images(n: int, rng: np.random.Generator, size: int = 16, classes: int = 4):
    """Class c = a bright horizontal stripe in row band c, plus noise (flip-invariant, learnable
    in a few steps)."""
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, size, size))
    h = size // classes
    for c in range(classes):
        x[y == c, c * h + 1:c * h + h - 1, 2:size - 2] += 180
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.uint8)


TINY_SPACE = {
    "schema_version": 1,
    "name": "tiny",
    "input": {"size": 16, "channels": 1},
    "num_classes": 4,
    "stem": {"channels": 8, "kernel": 3, "stride": 2},
    "first_block": {"channels": 8, "kernel": 3, "expand": 1, "stride": 1},
    "stages": [{"width": 8, "depth": 2, "stride": 1}, {"width": 16, "depth": 2, "stride": 2}],
    "head": {"channels": 32},
    "candidates": ["k3_e3", "k5_e3", "k3_e6"],
    "allow_zero": True,
}


def fake_table(space: SearchSpace) -> LatencyTable:
    """Deterministic latencies (no profiling): bigger kernels and expansions cost more."""
    entries = {}
    for k in LatencyTable().required_keys(space):
        ms = 0.05 + 0.01 * sum(int(c) for c in k if c.isdigit()) / 10
        entries[k] = {"ms": round(ms, 4), "spread_ms": 0.001}
    return LatencyTable({"backend": "torch-cpu", "device": "test"}, entries)


def two_cost_table(space: SearchSpace) -> LatencyTable:
    """Latencies of two values: 2 ms for expansion-6 ops, 1 ms for every other entry."""
    keys = LatencyTable().required_keys(space)
    return LatencyTable({"backend": "fake"},
                        {k: {"ms": 2.0 if ":e6:" in k else 1.0, "spread_ms": 0.0} for k in keys})


class Crash(Exception):
    pass


def crash_after(n: int):
    """A progress wrapper that raises once ``n`` batches have been handed out in total."""
    seen = {"n": 0}

    def progress(it, desc, total):
        for item in it:
            if seen["n"] == n:
                raise Crash()
            seen["n"] += 1
            yield item

    return progress


def write_photo_folder(root: Path, *, side: int, per_class: int = 24, classes: int = 2,
                       grey: bool = False) -> Path:
    """Plain class folders ``root/<class>/*.png`` of ``side`` px images: class c is a bright
    square in quadrant c, plus noise (learnable in a few steps)."""
    from PIL import Image

    rng = np.random.default_rng(side)
    h = side // 2
    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        for i in range(per_class):
            a = rng.integers(0, 60, (side, side, 3), dtype=np.uint8)
            r, q = (c // 2) * h, (c % 2) * h
            a[r + 2:r + h - 2, q + 2:q + h - 2] += 180
            Image.fromarray(a[:, :, 0] if grey else a).save(d / f"{i:03d}.png")
    return root

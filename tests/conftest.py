"""Shared fixtures: a tiny search space and a small generated IDX dataset (learnable classes)."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

os.environ.setdefault("DIRECTNAS_NO_PROGRESS", "1")
torch.set_num_threads(1)

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


@pytest.fixture
def tiny_space_dict() -> dict:
    return yaml.safe_load(yaml.safe_dump(TINY_SPACE))


@pytest.fixture
def tiny_space_yaml(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY_SPACE))
    return p


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


@pytest.fixture(scope="session")
def tiny_idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tinyidx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 1200), ("t10k", 300)):
        x, y = make_images(n, rng)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root

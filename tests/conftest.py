"""Shared fixtures: a tiny search space and a small generated IDX dataset (learnable classes);
plain helpers and the repository's paths are in ``helpers.py``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import TINY_SPACE, make_images, write_idx  # noqa: F401  (fixtures' data)

os.environ.setdefault("DIRECTNAS_NO_PROGRESS", "1")
torch.set_num_threads(1)



@pytest.fixture
def tiny_space_dict() -> dict:
    return yaml.safe_load(yaml.safe_dump(TINY_SPACE))


@pytest.fixture
def tiny_space_yaml(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY_SPACE))
    return p


@pytest.fixture(scope="session")
def tiny_idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tinyidx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 1200), ("t10k", 300)):
        x, y = make_images(n, rng)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root

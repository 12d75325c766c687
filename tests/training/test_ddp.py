"""A tiny search under ``torchrun --nproc-per-node 2`` (gloo): the ranks stay identical and the
result is a valid Arch of the same structure as a single-process run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as td

from directnas.cli.main import main
from directnas.utils.fileio import torch_load
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from helpers import TINY_SPACE, make_images, write_idx
from helpers import fake_table
from helpers import CLI_WITH_CALLBACKS

torch.set_num_threads(1)
CALLBACKS = CLI_WITH_CALLBACKS
pytestmark = pytest.mark.skipif(not td.is_available() or not td.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 440), ("t10k", 100)):
        x, y = make_images(n, rng)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    fake_table(SearchSpace.from_dict(TINY_SPACE)).save(root / "table.json")
    return root


def argv(space: Path, data: Path, out: Path) -> list[str]:
    return ["search", "--space", str(space), "--data", str(data), "--out", str(out),
            "--latency-table", str(data / "table.json"), "--warmup-epochs", "1", "--epochs", "1",
            "--batch-size", "32", "--target-latency", "0.4", "--seed", "2", "--threads", "1",
            "--checkpoint-every", "3"]


def test_torchrun_two_ranks_identical(tmp_path, small, tiny_space_yaml):
    single = tmp_path / "single"
    assert main(argv(tiny_space_yaml, small, single)) == 0

    out, dump = tmp_path / "ddp", tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DIRECTNAS_NO_PROGRESS": "1"}
    # every rank dumps its final state through a callback passed to the library's search
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(CALLBACKS), "--dump", str(dump), "--", *argv(tiny_space_yaml, small, out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("architecture:") == 1  # only rank 0 prints and writes

    r0, r1 = torch_load(dump / "rank0.pt"), torch_load(dump / "rank1.pt")
    assert r0["world"] == r1["world"] == 2
    assert r0["net"].keys() == r1["net"].keys()
    for k, v in r0["net"].items():  # weights, alpha and BatchNorm statistics
        assert torch.equal(v, r1["net"][k]), k
    assert r0["ops"] == r1["ops"]

    a_ddp, a_one = Arch.load(out / "arch.json"), Arch.load(single / "arch.json")
    assert len(a_ddp.ops) == len(a_one.ops) == 4 and a_ddp.space == a_one.space
    assert a_ddp.ops == r0["ops"]
    s_ddp = json.loads((out / "search.json").read_text())
    s_one = json.loads((single / "search.json").read_text())
    # every rank sees half the batches of an epoch (DistributedSampler semantics)
    assert s_ddp["steps"] * 2 == s_one["steps"] and s_ddp["alpha_steps"] > 0
    assert json.loads((out / "search_config.json").read_text())["world"] == 2
    ck = torch_load(out / "search_checkpoint.pt")
    assert ck["state"]["step"] == s_ddp["steps"]
    assert s_ddp["history"][-1]["probs"] != s_ddp["history"][0]["probs"]  # alpha moved

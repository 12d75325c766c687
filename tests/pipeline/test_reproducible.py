"""Same seed and config -> the same alpha history and Arch; another seed -> another history."""

from __future__ import annotations

import pytest
import torch

from directnas.data.readers import load_dataset
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.space.space import SearchSpace
from directnas.utils.seeding import seed_everything
from helpers import TINY_SPACE
from helpers import fake_table

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tiny_idx_dir):
    space = SearchSpace.from_dict(TINY_SPACE)
    return space, load_dataset(tiny_idx_dir), fake_table(space)


def search(tiny, out, seed: int) -> tuple[Searcher, list[str]]:
    space, data, table = tiny
    cfg = SearchConfig(warmup_epochs=1, epochs=2, batch_size=64, seed=seed, threads=1,
                       arch_every=1, max_steps=8, history_every=1, target_latency_ms=0.4)
    seed_everything(seed)  # as directnas.search does at its entry
    s = Searcher(space, data, table, cfg, out)
    return s, s.run().ops


def test_same_seed_same_history_and_arch(tmp_path, tiny):
    a, ops_a = search(tiny, tmp_path / "a", seed=11)
    b, ops_b = search(tiny, tmp_path / "b", seed=11)
    assert ops_a == ops_b
    assert len(a.state.history) > 10  # one entry per alpha step
    assert a.state.history == b.state.history  # probabilities and E[LAT] after every alpha step
    for x, y in zip(a.net.arch_parameters(), b.net.arch_parameters()):
        assert torch.equal(x, y)
    c, _ = search(tiny, tmp_path / "c", seed=12)
    assert c.state.history != a.state.history


def test_supernet_accuracy_recalibrates_bn_and_restores_it(tmp_path, tiny):
    s, ops = search(tiny, tmp_path / "bn", seed=3)
    arch = s.derive()
    before = {k: v.clone() for k, v in s.net.state_dict().items()}
    acc = s.supernet_accuracy(arch)
    assert 0.0 <= acc <= 1.0
    after = s.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats put back
    assert s.supernet_accuracy(arch) == acc  # deterministic: same calibration, same batches


# ---- the library calls: the seed is set at their entry, before the net is built ---------------
def _dropout_space() -> SearchSpace:
    """The tiny space with head dropout: training also draws from the process's RNG."""
    return SearchSpace.from_dict({**TINY_SPACE, "head": {"channels": 32, "dropout": 0.2}})


def _tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np

    from helpers import make_images

    x, y = make_images(n, np.random.default_rng(seed))
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_api_train_with_a_seed_gives_the_same_weights_every_call():
    """``directnas.train(..., seed=0)`` twice in one process (whose RNG moved on in between):
    bitwise the same trained weights; another seed gives other weights."""
    import directnas
    from directnas.space.arch import uniform_arch

    arch = uniform_arch(_dropout_space(), "k3_e3")
    data = _tensors(192, 0)
    kw = dict(epochs=1, max_steps=3, batch_size=32, threads=1, device="cpu",
              measure_latency=False, flip_tta=False)
    a = directnas.train(arch, data, seed=0, **kw).model.state_dict()
    torch.rand(5)
    b = directnas.train(arch, data, seed=0, **kw).model.state_dict()
    c = directnas.train(arch, data, seed=1, **kw).model.state_dict()
    assert _same(a, b)
    assert not _same(a, c)


def test_api_search_with_a_seed_gives_the_same_arch_and_supernet_every_call():
    """``directnas.search(..., seed=0, quick=True)`` twice: the same arch, alpha history and
    supernet weights, bitwise (the supernet is read through the ``after_search`` callback)."""
    import directnas

    space = _dropout_space()
    data = _tensors(192, 1)
    nets: list[dict[str, torch.Tensor]] = []

    def keep(searcher: Searcher, arch: object) -> None:
        nets.append({k: v.detach().clone() for k, v in searcher.net.state_dict().items()})

    kw = dict(table=fake_table(space), target_latency="1.5x", quick=True, device="cpu",
              max_steps=3, batch_size=32, threads=1, after_search=keep)
    a = directnas.search(space, data, seed=0, **kw)
    torch.rand(5)
    b = directnas.search(space, data, seed=0, **kw)
    c = directnas.search(space, data, seed=1, **kw)
    assert a.arch.ops == b.arch.ops and a.history == b.history
    assert _same(nets[0], nets[1])
    assert not _same(nets[0], nets[2])


# ---- the commands: same command and seed -> bitwise the same trained weights ---------------------
def _state(path) -> dict[str, torch.Tensor]:
    from directnas.utils.fileio import torch_load

    return torch_load(path, what="model")["state_dict"]


@pytest.mark.slow
def test_cli_train_twice_and_killed_then_resumed_gives_the_same_weights(tmp_path, tiny_idx_dir,
                                                                        monkeypatch):
    """``directnas train --arch A --seed 0`` in a process of its own and in this one (whose RNGs
    have moved on), and a third time killed (SIGKILL) once a mid-epoch checkpoint exists, then
    resumed with ``--resume``: the same model.pt, bitwise."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from directnas.space.arch import uniform_arch
    from directnas.training.train_net import TRAIN_CHECKPOINT
    from helpers import CLI_WITH_CALLBACKS, SRC

    space = _dropout_space()
    uniform_arch(space, "k5_e3").save(tmp_path / "arch.json")
    fake_table(space).save(tmp_path / "table.json")
    (tmp_path / "fast.yaml").write_text("max_steps: 6\n")
    from directnas.cli.main import main

    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    env = {**os.environ, "PYTHONPATH": str(SRC.parent), "DIRECTNAS_NO_PROGRESS": "1",
           "OMP_NUM_THREADS": "1"}

    def argv(out: str, *extra: str) -> list[str]:
        return ["train", "--arch", str(tmp_path / "arch.json"), "--data", str(tiny_idx_dir),
                "--latency-table", str(tmp_path / "table.json"), "--seed", "0", "--epochs", "2",
                "--batch-size", "64", "--config", str(tmp_path / "fast.yaml"),
                "--checkpoint-every", "2", "--threads", "1", "--repeats", "2",
                "--out", str(tmp_path / out), *extra]

    subprocess.run([sys.executable, "-m", "directnas", *argv("a")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    torch.rand(7)
    assert main(argv("b")) == 0
    proc = subprocess.Popen([sys.executable, str(CLI_WITH_CALLBACKS), "--step-delay", "0.3", "--",
                             *argv("c")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (tmp_path / "c" / TRAIN_CHECKPOINT).exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not (tmp_path / "c" / "model.pt").exists()  # killed mid-training
    assert main(argv("c", "--resume")) == 0
    a, b, c = (_state(tmp_path / x / "model.pt") for x in "abc")
    assert _same(a, b) and _same(a, c)


class _Crash(Exception):
    pass


def _crash_at(prefix: str, k: int):
    """A progress wrapper that raises at the k-th batch of the loop whose label starts with
    ``prefix`` (``"warm-up"``, ``"search"``, ``"train 1/"``, ...)."""
    seen = {"n": 0}

    def progress(it, desc, total):
        for item in it:
            if desc.startswith(prefix):
                if seen["n"] == k:
                    raise _Crash(desc)
                seen["n"] += 1
            yield item

    return progress


@pytest.mark.slow
def test_run_interrupted_at_every_stage_boundary_trains_the_same_net(tmp_path, tiny_idx_dir,
                                                                   monkeypatch):
    """A ``run`` interrupted after the table, mid-search, after the search (before the first
    training checkpoint), mid-training and after training (before the export), each time
    re-run: the same arch and bitwise the same trained weights as an uninterrupted run."""
    import directnas
    from directnas.pipeline import run as run_module

    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    space = _dropout_space()
    fake_table(space).save(tmp_path / "table.json")

    def run(out: str, progress=lambda it, desc, total: it) -> None:
        directnas.run(space, str(tiny_idx_dir), out=tmp_path / out, target_latency="1.5x",
                      table=tmp_path / "table.json", tensorboard=False, say=lambda line: None,
                      protocol={"threads": 1, "repeats": 2, "warmup": 0, "rounds": 1},
                      search={"warmup_epochs": 1, "epochs": 1, "batch_size": 64, "max_steps": 4,
                              "threads": 1, "checkpoint_every": 2, "eval_batches": 1},
                      train={"epochs": 2, "batch_size": 64, "max_steps": 4, "threads": 1,
                             "checkpoint_every": 2}, progress=progress)

    run("ref")
    for prefix, k in (("warm-up", 0), ("search", 1), ("train 1/", 0), ("train 2/", 1)):
        with pytest.raises(_Crash):
            run("cut", _crash_at(prefix, k))
    export_stage = run_module.export_stage

    def crash_once(*args, **kwargs):
        monkeypatch.setattr(run_module, "export_stage", export_stage)
        raise _Crash("export")

    monkeypatch.setattr(run_module, "export_stage", crash_once)
    with pytest.raises(_Crash):
        run("cut")
    assert not (tmp_path / "cut" / "export").exists()
    run("cut")
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert (ref / "search" / "arch.json").read_text() == (cut / "search" / "arch.json").read_text()
    assert _same(_state(ref / "train" / "model.pt"), _state(cut / "train" / "model.pt"))
    assert (cut / "export" / "export.json").exists()

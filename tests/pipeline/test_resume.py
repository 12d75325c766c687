"""Exact resumption: a search (or training) interrupted anywhere continues to the same result.

The in-process tests crash a run by raising from the progress iterator at a chosen step; the
SIGKILL test kills a real ``python -m directnas search`` process once a checkpoint exists.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from directnas.cli.main import main
from directnas.data.readers import load_dataset
from directnas.utils.fileio import torch_load
from directnas.nas.searcher import CHECKPOINT, SearchConfig, Searcher
from directnas.space.arch import uniform_arch
from directnas.space.space import SearchSpace
from directnas.training.train_net import TRAIN_CHECKPOINT, TrainConfig, train_net
from directnas.utils.seeding import seed_everything
from helpers import CLI_WITH_CALLBACKS
from helpers import Crash, crash_after, fake_table  # noqa: F401  (shared)

torch.set_num_threads(1)


def search_cfg(**kw) -> SearchConfig:
    base = dict(warmup_epochs=1, epochs=2, batch_size=64, seed=3, threads=1, arch_every=1,
                target_latency_ms=0.4, history_every=2, checkpoint_every=5)
    return SearchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny(tiny_idx_dir):
    from helpers import TINY_SPACE

    space = SearchSpace.from_dict(TINY_SPACE)
    return space, load_dataset(tiny_idx_dir), fake_table(space)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    space, data, table = tiny
    seed_everything(search_cfg().seed)  # as directnas.search does at its entry
    ref = Searcher(space, data, table, search_cfg(), tmp_path_factory.mktemp("ref"))
    return ref, ref.run()


def alphas(s: Searcher) -> list[torch.Tensor]:
    return [a.detach().clone() for a in s.net.arch_parameters()]


@pytest.mark.parametrize("crash_at", [7, 16, 38])  # mid warm-up, an epoch boundary, mid search
def test_search_resumes_bitwise(tmp_path, tiny, reference, crash_at):
    space, data, table = tiny
    ref, ref_arch = reference

    out = tmp_path / "crashed"
    seed_everything(search_cfg().seed)
    s1 = Searcher(space, data, table, search_cfg(), out)
    with pytest.raises(Crash):
        s1.run(progress=crash_after(crash_at))
    ck = torch_load(out / CHECKPOINT)
    assert 0 < ck["state"]["step"] <= crash_at
    seed_everything(7)  # a fresh process: another init, all of it replaced by the checkpoint
    s2 = Searcher(space, data, table, search_cfg(), out)
    assert s2.resume()
    # search_wall_s counts the loop time of the epochs the crashed run finished
    done_s = sum(r["epoch_s"] for r in ck["state"]["log"])
    assert s2.earlier_s == pytest.approx(done_s) and (done_s > 0) == (crash_at >= 16)
    arch = s2.run()
    for a, b in zip(alphas(ref), alphas(s2)):
        assert torch.equal(a, b)
    assert arch.ops == ref_arch.ops
    assert s2.state.history == ref.state.history
    assert [r["train_loss"] for r in s2.state.log] == [r["train_loss"] for r in ref.state.log]
    for k, v in ref.net.state_dict().items():
        assert torch.equal(v, s2.net.state_dict()[k]), k


def test_resume_without_checkpoint_restarts(tmp_path, tiny):
    space, data, table = tiny
    assert not Searcher(space, data, table, search_cfg(), tmp_path).resume()


def test_train_resumes_bitwise(tmp_path, tiny):
    space, data, _ = tiny
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=1, threads=1, checkpoint_every=4,
                      max_steps=10)
    arch = uniform_arch(space, "k3_e3")
    torch.manual_seed(0)
    ref_net = arch.build()
    ref = train_net(ref_net, data, cfg, checkpoint=tmp_path / "ref" / TRAIN_CHECKPOINT)
    torch.manual_seed(0)
    net = arch.build()
    ck = tmp_path / "run" / TRAIN_CHECKPOINT
    with pytest.raises(Crash):
        train_net(net, data, cfg, checkpoint=ck, progress=crash_after(13))
    assert torch_load(ck)["state"]["step"] == 12
    torch.manual_seed(5)  # a fresh process: different init, all of it replaced by the checkpoint
    net2 = arch.build()
    got = train_net(net2, data, cfg, checkpoint=ck, resume=True)
    assert got == ref
    for k, v in ref_net.state_dict().items():
        assert torch.equal(v, net2.state_dict()[k]), k


def _search_argv(space_yaml: Path, data: Path, table: Path, out: Path) -> list[str]:
    return ["search", "--space", str(space_yaml), "--data", str(data), "--out", str(out),
            "--latency-table", str(table), "--warmup-epochs", "1", "--epochs", "2",
            "--batch-size", "64", "--target-latency", "0.4", "--seed", "5", "--threads", "1",
            "--checkpoint-every", "4"]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny, tiny_idx_dir, tiny_space_yaml,
                                                  monkeypatch):
    space, _, table = tiny
    table_path = tmp_path / "table.json"
    table.save(table_path)
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    ref = tmp_path / "ref"
    assert main(_search_argv(tiny_space_yaml, tiny_idx_dir, table_path, ref)) == 0

    out = tmp_path / "killed"
    env = {**os.environ, "DIRECTNAS_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    # a slow run to kill: the search sleeps in an on_step callback passed to the library
    helper = CLI_WITH_CALLBACKS
    proc = subprocess.Popen([sys.executable, str(helper), "--step-delay", "0.1", "--",
                             *_search_argv(tiny_space_yaml, tiny_idx_dir, table_path, out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # a guard against hangs; slow under load
    while not (out / CHECKPOINT).exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not (out / "arch.json").exists()  # killed mid-run
    killed_at = torch_load(out / CHECKPOINT)["state"]["step"]
    assert 0 < killed_at < 48

    # without --resume the folder is refused (nothing overwritten)
    assert main(_search_argv(tiny_space_yaml, tiny_idx_dir, table_path, out)) == 2
    # resume without re-passing the table: the run folder's own table is used
    argv = _search_argv(tiny_space_yaml, tiny_idx_dir, table_path, out)
    i = argv.index("--latency-table")
    assert main(argv[:i] + argv[i + 2:] + ["--resume"]) == 0
    assert not list(out.glob(".*.tmp"))

    a, b = torch_load(ref / CHECKPOINT), torch_load(out / CHECKPOINT)
    assert b["state"]["step"] == a["state"]["step"] == 48
    for k, v in a["net"].items():
        assert torch.equal(v, b["net"][k]), k
    ra, rb = json.loads((ref / "arch.json").read_text()), json.loads((out / "arch.json").read_text())
    assert [l["op"] for l in ra["layers"]] == [l["op"] for l in rb["layers"]]
    sa, sb = json.loads((ref / "search.json").read_text()), json.loads((out / "search.json").read_text())
    assert sa["history"] == sb["history"]


def _finite(ck: dict) -> bool:
    tensors = [v for v in ck["net"].values() if v.is_floating_point()]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny, tiny_idx_dir,
                                                       tiny_space_yaml, monkeypatch, capsys):
    import torch.nn.functional as F

    import directnas.training.trainer as trainer_mod

    _, _, table = tiny
    table_path = tmp_path / "table.json"
    table.save(table_path)
    calls = {"n": 0}

    def poisoned(logits, labels, **kw):  # the 11th weight step's loss is NaN
        calls["n"] += 1
        loss = F.cross_entropy(logits, labels, **kw)
        return loss * float("nan") if calls["n"] == 11 else loss

    monkeypatch.setattr(trainer_mod, "F", type("F", (), {"cross_entropy": staticmethod(poisoned)}))
    out = tmp_path / "run"
    rc = main(_search_argv(tiny_space_yaml, tiny_idx_dir, table_path, out))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "loss at step 10 became NaN/inf" in err and "lower --lr" in err and "--resume" in err
    ck = torch_load(out / CHECKPOINT)
    assert ck["state"]["step"] == 8 and _finite(ck)  # checkpoint-every 4: the last good one
    assert not (out / "arch.json").exists()


def test_alpha_nan_stops_without_writing_bad_checkpoint(tmp_path, tiny, tiny_idx_dir,
                                                        tiny_space_yaml, monkeypatch, capsys):
    from directnas.nas.loss import HardwareLoss

    _, _, table = tiny
    table_path = tmp_path / "table.json"
    table.save(table_path)
    real = HardwareLoss.__call__
    calls = {"n": 0}

    def poisoned(self, logits, labels, lat):  # the 3rd alpha step's objective is NaN
        calls["n"] += 1
        loss, info = real(self, logits, labels, lat)
        return (loss * float("nan") if calls["n"] == 3 else loss), info

    monkeypatch.setattr(HardwareLoss, "__call__", poisoned)
    out = tmp_path / "run"
    rc = main(_search_argv(tiny_space_yaml, tiny_idx_dir, table_path, out))
    err = capsys.readouterr().err
    assert rc == 2 and "alpha became NaN/inf: lower --arch-lr" in err
    ck = torch_load(out / CHECKPOINT)
    assert ck["state"]["step"] == 20 and ck["state"]["alpha_steps"] == 2  # the last good one
    assert _finite(ck)
    assert not (out / "arch.json").exists()

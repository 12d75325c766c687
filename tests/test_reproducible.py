"""Same seed and config -> the same alpha history and Arch; another seed -> another history."""

from __future__ import annotations

import pytest
import torch

from directnas.data.readers import load_dataset
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.space.space import SearchSpace
from tests.conftest import TINY_SPACE
from tests.test_resume import fake_table

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tiny_idx_dir):
    space = SearchSpace.from_dict(TINY_SPACE)
    return space, load_dataset(tiny_idx_dir), fake_table(space)


def search(tiny, out, seed: int) -> tuple[Searcher, list[str]]:
    space, data, table = tiny
    cfg = SearchConfig(warmup_epochs=1, epochs=2, batch_size=64, seed=seed, threads=1,
                       arch_every=1, max_steps=8, history_every=1, target_latency_ms=0.4)
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

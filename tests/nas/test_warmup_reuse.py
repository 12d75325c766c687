"""Search once, many targets: the warm-up does not depend on the target, so a search of a second
target started from the first one's warm-up ends exactly where a search from scratch would."""

from __future__ import annotations

import pytest
import torch

from directnas.data.readers import load_dataset
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.space.space import SearchSpace
from directnas.utils.seeding import seed_everything
from helpers import TINY_SPACE, fake_table


@pytest.fixture(scope="module")
def tiny(tiny_idx_dir):
    space = SearchSpace.from_dict(TINY_SPACE)
    return space, load_dataset(tiny_idx_dir), fake_table(space)


def search(tiny, out, target: float, warmup=None, **kw) -> Searcher:
    space, data, table = tiny
    cfg = SearchConfig(**{**dict(warmup_epochs=2, epochs=1, batch_size=64, seed=5, threads=1,
                                 arch_every=1, max_steps=6, history_every=2,
                                 target_latency_ms=target), **kw})
    seed_everything(cfg.seed)
    s = Searcher(space, data, table, cfg, out, warmup_cache=warmup)
    s.arch = s.run()
    return s


def test_a_second_target_from_the_shared_warmup_equals_a_search_from_scratch(tmp_path, tiny):
    cache = tmp_path / "warmup_checkpoint.pt"
    first = search(tiny, tmp_path / "t1", 0.40, warmup=cache)
    assert cache.exists() and first.warmup_reused_s is None
    second = search(tiny, tmp_path / "t2", 0.48, warmup=cache)
    scratch = search(tiny, tmp_path / "scratch", 0.48)
    assert second.warmup_reused_s is not None and second.warmup_reused_s > 0
    assert second.arch.ops == scratch.arch.ops
    for a, b in zip(second.net.state_dict().values(), scratch.net.state_dict().values()):
        assert torch.equal(a, b)
    assert [h["probs"] for h in second.state.history] == [h["probs"] for h in scratch.state.history]
    # the reused warm-up's steps are not run again: the second search ran one epoch of steps
    assert second.state.step == scratch.state.step and second.state.epoch == 3


def test_other_options_warm_up_again(tmp_path, tiny):
    cache = tmp_path / "warmup_checkpoint.pt"
    search(tiny, tmp_path / "t1", 0.40, warmup=cache)
    other = search(tiny, tmp_path / "t2", 0.48, warmup=cache, lr=0.01)  # lr changes the warm-up
    assert other.warmup_reused_s is None
    same = search(tiny, tmp_path / "t3", 0.48, warmup=cache, arch_lr=0.02)  # alpha's alone: reuse
    assert same.warmup_reused_s is not None

"""Search once, many targets: the warm-up does not depend on the target, so a search of a second
target started from the first one's warm-up ends exactly where a search from scratch would; with
alpha on cross-entropy alone (loss none, the default) neither does the rest of the search, and a
second target reuses all of it and only derives."""

from __future__ import annotations

import pytest
import torch

from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.latency.table import LatencyTable
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.space.space import SearchSpace
from directnas.utils.seeding import seed_everything
from helpers import TINY_SPACE, fake_table


@pytest.fixture(scope="module")
def tiny(tiny_idx_dir):
    space = SearchSpace.from_dict(TINY_SPACE)
    return space, load_dataset(tiny_idx_dir), fake_table(space)


def search(tiny, out, target: float, warmup=None, table=None, **kw) -> Searcher:
    space, data, fake = tiny
    table = table if table is not None else fake
    cfg = SearchConfig(**{**dict(warmup_epochs=2, epochs=1, batch_size=64, seed=5, threads=1,
                                 arch_every=1, max_steps=6, history_every=2, loss="hinge",
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


def scaled(table: LatencyTable, factor: float) -> LatencyTable:
    return LatencyTable(dict(table.meta), {k: {**v, "ms": v["ms"] * factor}
                                           for k, v in table.entries.items()})


def test_with_loss_none_a_second_target_reuses_the_whole_search(tmp_path, tiny):
    """The second target runs no step: it loads the first one's final state and derives its own
    net, equal to a search from scratch at that target, with the curves priced on its own table
    (a run re-anchors each target's table)."""
    cache = tmp_path / "warmup_checkpoint.pt"
    kw = dict(loss="none", unlearned_derive="keep")  # the tiny supernet learns little
    first = search(tiny, tmp_path / "t1", 0.40, warmup=cache, **kw)
    shared = tmp_path / "search_shared.pt"
    assert shared.exists() and first.search_reused_s is None
    other = scaled(tiny[2], 1.25)
    second = search(tiny, tmp_path / "t2", 0.58, warmup=cache, table=other, **kw)
    scratch = search(tiny, tmp_path / "scratch", 0.58, table=other, **kw)
    assert second.search_reused_s is not None and second.search_reused_s > 0
    assert second.warmup_reused_s is not None and 0 < second.warmup_reused_s < second.search_reused_s
    assert second.arch.ops == scratch.arch.ops and second.arch.meta["derive"] == "constrained"
    assert second.arch.meta["predicted_latency_ms"] <= 0.58 + 1e-9
    assert second.state.step == scratch.state.step and second.state.alpha_steps > 0
    assert [h["probs"] for h in second.state.history] == [h["probs"] for h in scratch.state.history]
    for a, b in zip(second.state.history, scratch.state.history):
        assert a["expected_latency_ms"] == pytest.approx(b["expected_latency_ms"], rel=1e-5)
    for a, b in zip(second.state.log, scratch.state.log):
        assert a["expected_latency_ms"] == pytest.approx(b["expected_latency_ms"], rel=1e-5)
        assert a["derived_latency_ms"] == pytest.approx(b["derived_latency_ms"], rel=1e-5)
    assert (tmp_path / "t2" / "search_checkpoint.pt").exists()  # its folder resumes from it


def test_a_latency_loss_or_other_alpha_options_search_again(tmp_path, tiny):
    cache = tmp_path / "warmup_checkpoint.pt"
    search(tiny, tmp_path / "t1", 0.40, warmup=cache, loss="none")
    hinge = search(tiny, tmp_path / "t2", 0.48, warmup=cache, loss="hinge")
    assert hinge.search_reused_s is None and hinge.warmup_reused_s is not None
    lr = search(tiny, tmp_path / "t3", 0.48, warmup=cache, loss="none", arch_lr=0.02)
    assert lr.search_reused_s is None and lr.warmup_reused_s is not None
    window = search(tiny, tmp_path / "t4", 0.48, warmup=cache, loss="none", derive_window=0.9)
    assert window.search_reused_s is not None  # a derive option alone: reused


def test_loss_none_with_argmax_and_a_target_is_refused(tmp_path, tiny):
    with pytest.raises(UserError, match="loss none and derive argmax ignore the target"):
        search(tiny, tmp_path / "t", 0.40, loss="none", derive="argmax")
    assert search(tiny, tmp_path / "n", None, loss="none", derive="argmax").arch.ops

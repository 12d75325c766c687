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

"""Random-search baseline: latency-window sampling, best-of-N by validation accuracy, CLI."""

import json

import pytest

from directnas.cli.main import main
from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.latency.table import LatencyTable
from directnas.latency.sampling import ArchSampler
from directnas.nas.random_search import RandomSearchConfig, random_search
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace


def fake_table(space: SearchSpace) -> LatencyTable:
    keys = LatencyTable().required_keys(space)
    return LatencyTable({"backend": "fake"},
                        {k: {"ms": 2.0 if ":e6:" in k else 1.0, "spread_ms": 0.0} for k in keys})


def test_sampler_stays_in_the_latency_window(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = fake_table(space)
    s = ArchSampler(space, table, target_ms=8.0, tolerance=0.1, seed=0)
    lats = [s.latency_ms(s.sample().ops) for _ in range(50)]
    assert all(7.2 <= v <= 8.8 for v in lats)
    from directnas.latency.predictor import predict_arch_ms
    a = s.sample()
    assert s.latency_ms(a.ops) == pytest.approx(predict_arch_ms(a, table))
    at_most = ArchSampler(space, table, target_ms=8.0, tolerance=None, seed=0)
    lats = [at_most.latency_ms(at_most.sample().ops) for _ in range(50)]
    assert max(lats) <= 8.0 and min(lats) < 7.2  # anything at or below T
    with pytest.raises(UserError, match="target-latency"):
        ArchSampler(space, table, target_ms=1.0, tolerance=0.1, seed=0).sample(tries=2)


def test_random_search_keeps_the_best_candidate(tiny_space_dict, tiny_idx_dir):
    space = SearchSpace.from_dict(tiny_space_dict)
    cfg = RandomSearchConfig(budget_s=600, target_latency_ms=8.0, steps_per_arch=5, batch_size=32,
                             valid_size=200, max_archs=3, threads=1)
    res = random_search(space, load_dataset(tiny_idx_dir), fake_table(space), cfg)
    assert len(res.candidates) == 3
    assert len({tuple(c.ops) for c in res.candidates}) == 3
    best = max(res.candidates, key=lambda c: c.valid_accuracy)
    assert res.best.meta["valid_accuracy"] == best.valid_accuracy
    assert res.best.meta["strategy"] == "random"
    assert all(7.2 <= c.predicted_latency_ms <= 8.8 for c in res.candidates)
    assert best.valid_accuracy > 0.25  # stripes are learnable; chance is 0.25


def test_cli_random_search_respects_the_budget(tiny_space_dict, tiny_space_yaml, tiny_idx_dir, tmp_path):
    table = tmp_path / "t.json"
    fake_table(SearchSpace.from_dict(tiny_space_dict)).save(table)
    out = tmp_path / "rs"
    rc = main(["random-search", "--space", str(tiny_space_yaml), "--data", str(tiny_idx_dir),
               "--latency-table", str(table), "--target-latency", "8", "--budget-s", "0.01",
               "--steps-per-arch", "3", "--batch-size", "32", "--seed", "1", "--threads", "1",
               "--out", str(out)])
    assert rc == 0
    arch = Arch.load(out / "arch.json")  # same format as a search's arch.json
    assert arch.meta["strategy"] == "random" and arch.meta["seed"] == 1
    summary = json.loads((out / "random_search.json").read_text())
    assert summary["archs"] == 1  # the budget was spent by the first candidate
    assert summary["arch"] == arch.ops and summary["candidates"][0]["train_s"] > 0


def test_cli_rejects_a_bad_budget(tiny_space_dict, tiny_space_yaml, tiny_idx_dir, tmp_path, capsys):
    table = tmp_path / "t.json"
    fake_table(SearchSpace.from_dict(tiny_space_dict)).save(table)
    rc = main(["random-search", "--space", str(tiny_space_yaml), "--data", str(tiny_idx_dir),
               "--latency-table", str(table), "--budget-s", "0", "--out", str(tmp_path / "o")])
    assert rc == 2 and "budget" in capsys.readouterr().err


def test_sampler_is_uniform_over_the_window_at_a_tight_target(tiny_space_dict):
    """Every arch predicted in the window is drawn, each about equally often, even where uniform
    per-layer draws almost never land (the window is a small corner of the space)."""
    import collections
    import itertools
    import random

    space = SearchSpace.from_dict(tiny_space_dict)
    rng = random.Random(0)
    keys = LatencyTable().required_keys(space)
    table = LatencyTable({"backend": "fake"},
                         {k: {"ms": rng.uniform(0.5, 3.0), "spread_ms": 0.0} for k in keys})
    from directnas.latency.predictor import fastest_ms, predict_arch_ms

    t = 1.25 * fastest_ms(space, table)
    inside = [ops for ops in itertools.product(*(l.candidates for l in space.layers))
              if 0.9 * t <= predict_arch_ms(Arch(space, list(ops)), table) <= t]
    n_all = 1
    for l in space.layers:
        n_all *= len(l.candidates)
    assert 2 <= len(inside) < n_all / 4
    s = ArchSampler(space, table, target_ms=t * 0.95, tolerance=0.05 / 0.95, seed=1)
    draws = 300 * len(inside)
    freq = collections.Counter(tuple(s.sample().ops) for _ in range(draws))
    assert set(freq) <= set(inside) and len(freq) == len(inside)
    expected = draws / len(inside)
    assert all(abs(c - expected) < 0.3 * expected for c in freq.values())

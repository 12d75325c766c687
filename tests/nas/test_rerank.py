"""The rerank derive: window candidates drawn from the search's probabilities, each scored inside
the supernet, the best kept; the weighted window sampler; the 'has the supernet learned' line."""

import itertools
import logging
from collections import Counter

import numpy as np
import pytest

from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.latency.sampling import ArchSampler
from directnas.nas.searcher import SearchConfig, Searcher, check_config
from directnas.space.space import SearchSpace
from directnas.utils.seeding import seed_everything
from helpers import two_cost_table


def _window_archs(space, table, lo, hi):
    fixed, per_layer = table.space_latencies(space)
    out = {}
    for idx in itertools.product(*[range(len(r)) for r in per_layer]):
        ms = fixed + sum(r[i] for r, i in zip(per_layer, idx))
        if lo <= ms <= hi:
            out[idx] = ms
    return out


def test_weighted_sampler_draws_p_restricted_to_the_window(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = two_cost_table(space)
    fixed, per_layer = table.space_latencies(space)
    rng = np.random.default_rng(3)
    weights = [list(rng.dirichlet(np.ones(len(r)))) for r in per_layer]
    t = fixed + sum(min(r) for r in per_layer) + 2.0  # two expansion-6 ops at most
    members = _window_archs(space, table, t - 1.0, t)
    s = ArchSampler(space, table, target_ms=t, tolerance=None, seed=0, weights=weights,
                    low_ms=t - 1.0)
    n = 4000
    draws = Counter(tuple(l.candidates.index(o) for l, o in zip(space.layers, s.sample().ops))
                    for _ in range(n))
    assert set(draws) <= set(members)
    mass = {a: float(np.prod([w[i] for w, i in zip(weights, a)])) for a in members}
    total = sum(mass.values())
    top = sorted(mass, key=mass.get, reverse=True)[:5]
    for a in top:  # the frequent ones come at their share of p inside the window
        assert draws[a] / n == pytest.approx(mass[a] / total, abs=0.03)


def test_weighted_sampler_rejects_bad_weights(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = two_cost_table(space)
    _, per_layer = table.space_latencies(space)
    with pytest.raises(ValueError):
        ArchSampler(space, table, target_ms=None, tolerance=None, seed=0,
                    weights=[[0.0] * len(r) for r in per_layer])


def _searcher(space, data, tmp_path, **kw):
    fixed, per_layer = two_cost_table(space).space_latencies(space)
    t = fixed + sum(min(r) for r in per_layer) + 3.0
    cfg = SearchConfig(warmup_epochs=1, epochs=0, batch_size=32, valid_size=200, max_steps=2,
                       target_latency_ms=t, threads=1, eval_batches=0, derive="rerank",
                       derive_window=0.8, **{"unlearned_derive": "keep", **kw})
    seed_everything(0)
    return Searcher(space, data, two_cost_table(space), cfg, tmp_path), t


def test_rerank_keeps_the_candidate_the_supernet_scores_best(tiny_space_dict, tiny_idx_dir, tmp_path,
                                                              monkeypatch):
    space = SearchSpace.from_dict(tiny_space_dict)
    s, t = _searcher(space, load_dataset(tiny_idx_dir), tmp_path, rerank_candidates=6)
    scores = {}

    def fake_accuracy(arch=None, max_batches=0, calib_batches=0):  # a score no candidate shares
        return scores.setdefault(tuple(arch.ops), 0.1 + 0.01 * len(scores))

    monkeypatch.setattr(s, "supernet_accuracy", fake_accuracy)
    arch = s.run()
    rows = arch.meta["rerank"]
    assert arch.meta["derive"] == "rerank" and len(rows) == 6
    assert len({tuple(r["ops"]) for r in rows}) == 6  # distinct
    assert all(0.8 * t - 1e-9 <= r["predicted_latency_ms"] <= t + 1e-9 for r in rows)
    best = max(rows, key=lambda r: r["supernet_accuracy"])
    assert arch.ops == best["ops"] and best is rows[-1]  # the last drawn scored best here
    assert arch.meta["predicted_latency_ms"] == pytest.approx(best["predicted_latency_ms"])


def test_rerank_on_a_real_supernet_scores_every_candidate(tiny_space_dict, tiny_idx_dir, tmp_path):
    space = SearchSpace.from_dict(tiny_space_dict)
    s, t = _searcher(space, load_dataset(tiny_idx_dir), tmp_path, rerank_candidates=3,
                     rerank_batches=2)
    arch = s.run()
    rows = arch.meta["rerank"]
    assert 1 <= len(rows) <= 3 and all(0.0 <= r["supernet_accuracy"] <= 1.0 for r in rows)
    assert arch.ops == max(rows, key=lambda r: r["supernet_accuracy"])["ops"]


def test_search_says_when_its_supernet_is_near_chance(tiny_space_dict, tiny_idx_dir, tmp_path, caplog):
    space = SearchSpace.from_dict(tiny_space_dict)
    s, _ = _searcher(space, load_dataset(tiny_idx_dir), tmp_path)
    chance = s.learned(1.0)["chance_accuracy"]
    assert 0.0 < chance < 1.0 and s.learned(1.0)["supernet_learned"]
    with caplog.at_level(logging.WARNING):
        assert not s.learned(chance + 0.01)["supernet_learned"]
    assert "near chance" in caplog.text and "--warmup-epochs" in caplog.text


def test_unknown_derive_is_one_line():
    with pytest.raises(UserError, match="derive must be one of"):
        check_config(SearchConfig(derive="best"))


def test_report_says_when_the_supernet_had_not_learned():
    from directnas.report.writer import search_decision_lines

    base = {"decision": {"mean_max_prob": 0.4, "max_prob": [0.4]}, "layer_names": [["a", "b", "c"]],
            "supernet_valid_accuracy": 0.12, "chance_accuracy": 0.1}
    text = "\n".join(search_decision_lines({**base, "supernet_learned": False}))
    assert "had not learned" in text and "12.0 %" in text and "10.0 %" in text
    assert "had not learned" not in "\n".join(search_decision_lines({**base, "supernet_learned": True}))
    rows = [{"ops": ["a"], "supernet_accuracy": 0.3}, {"ops": ["b"], "supernet_accuracy": 0.5}]
    assert "2 candidates" in "\n".join(search_decision_lines({**base, "rerank": rows}))


def test_rerank_starts_from_the_constrained_net_not_the_argmax(tiny_space_dict, tiny_idx_dir, tmp_path,
                                                               monkeypatch):
    import torch

    space = SearchSpace.from_dict(tiny_space_dict)
    s, t = _searcher(space, load_dataset(tiny_idx_dir), tmp_path, rerank_candidates=4)
    with torch.no_grad():  # alpha prefers the slowest op everywhere: the argmax net is over T
        for m in s.net.mixed:
            m.alpha.zero_()
            m.alpha[[i for i, n in enumerate(m.names) if "e6" in n][0]] = 5.0
    from directnas.latency.predictor import predict_arch_ms

    assert predict_arch_ms(s.net.derive(), s.table) > t
    monkeypatch.setattr(s, "supernet_accuracy", lambda arch=None, **kw: 0.5)  # a tie: the first kept
    arch = s.derive()
    assert arch.meta["derive"] == "rerank"
    assert 0.8 * t - 1e-9 <= arch.meta["predicted_latency_ms"] <= t + 1e-9
    assert all(r["predicted_latency_ms"] <= t + 1e-9 for r in arch.meta["rerank"])

"""Has the search decided: entropy, largest probability, seed agreement, recorded by the searcher."""

import math

import pytest

from directnas.data.readers import load_dataset
from directnas.nas.diagnostics import agreement, decision, layer_entropy, seed_agreement
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.utils.seeding import seed_everything
from directnas.space.space import SearchSpace
from helpers import two_cost_table as fake_table


def test_entropy_and_largest_probability():
    d = decision([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0]])
    assert d["max_prob"] == [0.25, 1.0]
    assert d["entropy"][0] == pytest.approx(math.log(4)) and d["entropy"][1] == 0.0
    assert d["mean_max_prob"] == pytest.approx(0.625)
    assert d["mean_normalised_entropy"] == pytest.approx(0.5)
    assert layer_entropy([0.5, 0.5]) == pytest.approx(math.log(2))


def test_seed_agreement_is_pairwise_fraction_of_layers():
    a, b, c = ["k3", "k5", "zero", "k7"], ["k3", "k5", "k7", "k7"], ["k5", "k5", "zero", "k3"]
    assert agreement(a, b) == 0.75 and agreement(a, c) == 0.5
    s = seed_agreement([a, b, c])
    assert [p["agreement"] for p in s["pairs"]] == [0.75, 0.5, 0.25]
    assert s["mean_pairwise_agreement"] == pytest.approx(0.5)
    assert s["layers_all_agree"] == 1 and s["layers"] == 4
    with pytest.raises(ValueError):
        agreement(a, a[:2])


def test_searcher_records_decision_and_supernet_accuracy_per_epoch(tiny_space_dict, tiny_idx_dir, tmp_path):
    space = SearchSpace.from_dict(tiny_space_dict)
    cfg = SearchConfig(warmup_epochs=1, epochs=1, batch_size=32, valid_size=200, max_steps=4,
                       arch_every=1, target_latency_ms=12.0, arch_lr=0.05, threads=1,
                       history_every=1, eval_batches=2)
    seed_everything(cfg.seed)
    s = Searcher(space, load_dataset(tiny_idx_dir), fake_table(space), cfg, tmp_path)
    arch = s.run()
    for row in s.state.log:
        assert 0.0 <= row["supernet_valid_accuracy"] <= 1.0
        n = [len(l.candidates) for l in space.layers]
        assert 1 / max(n) <= row["mean_max_prob"] <= 1.0 and row["mean_entropy"] >= 0.0
    h = s.state.history[-1]
    assert len(h["max_prob"]) == len(space.layers) and len(h["entropy"]) == len(space.layers)
    assert h["mean_max_prob"] == pytest.approx(sum(h["max_prob"]) / len(h["max_prob"]))
    summary = s.write_outputs(arch, wall_s=1.0)
    assert summary["decision"]["mean_max_prob"] == pytest.approx(s.state.log[-1]["mean_max_prob"])


def test_report_says_whether_the_search_decided():
    from directnas.report.writer import search_decision_lines

    search = {"decision": decision([[0.7, 0.2, 0.1], [0.4, 0.3, 0.3]]),
              "layer_names": [["a", "b", "c"], ["a", "b", "c"]],
              "epochs": [{"epoch": 1, "supernet_valid_accuracy": 0.5},
                         {"epoch": 2, "supernet_valid_accuracy": 0.75}]}
    text = "\n".join(search_decision_lines(search))
    assert "mean largest op probability 0.55 (uniform: 0.33)" in text and "0.70 0.40" in text
    assert "1: 50.0 %, 2: 75.0 %" in text
    assert search_decision_lines({"epochs": []}) == []

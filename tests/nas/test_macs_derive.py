"""The macs derive: the net with the most MACs inside the latency window (exact, additive per
layer), and the search's fallback to it when its supernet has not learned."""

import itertools

import pytest

from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.latency.predictor import predict_arch_ms
from directnas.nas.derive import derive_macs
from directnas.nas.searcher import SearchConfig, Searcher, check_config
from directnas.space.arch import Arch
from directnas.space.macs import layer_mmacs
from directnas.space.space import SearchSpace
from directnas.training.train_net import count_macs
from directnas.utils.seeding import seed_everything
from helpers import two_cost_table


def _arch(space, idx):
    return Arch(space, [l.candidates[i] for l, i in zip(space.layers, idx)])


def test_layer_macs_add_up_to_the_built_nets_macs(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    mm = layer_mmacs(space.layers)
    shape = (space.input_channels, space.input_size, space.input_size)
    base = [0] * len(space.layers)  # the first candidate everywhere
    ref = count_macs(_arch(space, base).build(), shape)
    for li, layer in enumerate(space.layers):  # one layer changed at a time: the difference is its term
        for j in range(1, len(layer.candidates)):
            idx = list(base)
            idx[li] = j
            got = count_macs(_arch(space, idx).build(), shape) - ref
            assert got == pytest.approx(1e6 * (mm[li][j] - mm[li][0]), abs=1.0), (li, layer.candidates[j])


def test_macs_derive_is_the_most_macs_net_of_the_window(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    fixed, per_layer = two_cost_table(space).space_latencies(space)
    mm = layer_mmacs(space.layers)
    for extra in (1.0, 2.0, 3.5):
        t = fixed + sum(min(r) for r in per_layer) + extra
        best = max(sum(m[i] for m, i in zip(mm, idx))
                   for idx in itertools.product(*[range(len(r)) for r in per_layer])
                   if 0.8 * t <= fixed + sum(r[i] for r, i in zip(per_layer, idx)) <= t)
        idx = derive_macs(mm, per_layer, fixed, t, window=0.8)
        ms = fixed + sum(r[i] for r, i in zip(per_layer, idx))
        assert 0.8 * t - 1e-9 <= ms <= t + 1e-9
        assert sum(m[i] for m, i in zip(mm, idx)) == pytest.approx(best)


def _searcher(space, data, tmp_path, **kw):
    fixed, per_layer = two_cost_table(space).space_latencies(space)
    t = fixed + sum(min(r) for r in per_layer) + 3.0
    cfg = SearchConfig(warmup_epochs=1, epochs=0, batch_size=32, valid_size=200, max_steps=2,
                       target_latency_ms=t, threads=1, eval_batches=0, derive_window=0.8, **kw)
    seed_everything(0)
    return Searcher(space, data, two_cost_table(space), cfg, tmp_path), t


@pytest.mark.parametrize("accuracy,fallback,expect", [
    (0.0, "macs", "macs (supernet not learned)"), (0.0, "keep", "constrained"),
    (1.0, "macs", "constrained")])
def test_search_keeps_the_macs_net_when_its_supernet_has_not_learned(
        tiny_space_dict, tiny_idx_dir, tmp_path, monkeypatch, accuracy, fallback, expect):
    space = SearchSpace.from_dict(tiny_space_dict)
    s, t = _searcher(space, load_dataset(tiny_idx_dir), tmp_path, unlearned_derive=fallback)
    monkeypatch.setattr(s, "supernet_accuracy", lambda arch=None, **kw: accuracy)
    arch = s.derive()
    assert arch.meta["derive"] == expect
    assert arch.meta["supernet_learned"] is (accuracy == 1.0)
    if expect.startswith("macs"):
        assert list(arch.ops) == list(s.macs_arch(t).ops)
    assert 0.8 * t - 1e-9 <= predict_arch_ms(arch, s.table) <= t + 1e-9
    summary = s.write_outputs(arch, wall_s=1.0)
    assert summary["derive"] == expect and summary["search_choice"]["supernet_accuracy"] == accuracy


def test_macs_derive_asked_for_needs_no_supernet_score(tiny_space_dict, tiny_idx_dir, tmp_path, monkeypatch):
    space = SearchSpace.from_dict(tiny_space_dict)
    s, t = _searcher(space, load_dataset(tiny_idx_dir), tmp_path, derive="macs")
    arch = s.derive()
    assert arch.meta["derive"] == "macs" and list(arch.ops) == list(s.macs_arch(t).ops)


def test_report_says_the_macs_net_was_kept():
    from directnas.report.writer import search_decision_lines

    search = {"decision": {"mean_max_prob": 0.4, "max_prob": [0.4]}, "layer_names": [["a", "b"]],
              "supernet_valid_accuracy": 0.5, "chance_accuracy": 0.1, "supernet_learned": False,
              "derive": "macs (supernet not learned)",
              "search_choice": {"ops": ["a"], "supernet_accuracy": 0.11}}
    text = "\n".join(search_decision_lines(search))
    assert "had not learned" in text and "11.0 %" in text and "most MACs" in text


def test_unknown_unlearned_derive_is_one_line():
    with pytest.raises(UserError, match="unlearned_derive must be one of"):
        check_config(SearchConfig(unlearned_derive="random"))


def test_report_shows_about_a_dozen_epochs_of_a_long_search():
    from directnas.report.writer import search_decision_lines

    search = {"decision": {"mean_max_prob": 0.4, "max_prob": [0.4]}, "layer_names": [["a", "b"]],
              "epochs": [{"epoch": i + 1, "supernet_valid_accuracy": i / 100} for i in range(90)]}
    line = search_decision_lines(search)[1]
    assert "every 8th" in line and line.count(" %") == 13 and line.endswith("90: 89.0 %.")
    short = {**search, "epochs": search["epochs"][:3]}
    assert search_decision_lines(short)[1].count(" %") == 3

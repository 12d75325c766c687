"""Re-anchoring a table at the target: nets predicted near it are timed, the correction scaled."""

import pytest

from directnas.latency import near_target as nt
from directnas.latency.table import LatencyTable
from directnas.latency.near_target import NEAR_WINDOW, near_target_archs, refine_near_target
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.measure import NOISE, REFERENCE, Protocol, profile_space
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace

FAST = Protocol(threads=1, warmup=1, repeats=3, rounds=2)


@pytest.fixture(scope="module")
def space_table():
    from conftest import TINY_SPACE

    space = SearchSpace.from_dict(TINY_SPACE)
    return space, profile_space(space, proto=FAST)


def mid_target(space, table) -> float:  # noqa: ANN001
    """A target with a net predicted at 0.95 of it (the tiny space has few nets)."""
    return predict_arch_ms(Arch(space, [l.candidates[1] for l in space.layers]), table) / 0.95


def runs_at(factor, table):  # noqa: ANN001, ANN201
    """A stand-in for ``measure_space``: every net runs ``factor`` x its prediction on ``table``."""

    def fake_measure(space, *, nets, **kw):  # noqa: ANN001
        out = {k: {"ms": factor * predict_arch_ms(a, table)} for k, a in nets.items()}
        out[NOISE] = {"ms": 0.5, "noise_floor": 0.03}
        return out

    return fake_measure


def _all_ops(space):  # noqa: ANN001
    import itertools

    return itertools.product(*(l.candidates for l in space.layers))


def test_near_nets_lie_in_the_window_and_differ(space_table):
    space, table = space_table
    t = mid_target(space, table)
    archs = near_target_archs(space, table, t, 6, seed=0)
    assert len(archs) >= 1 and len({tuple(a.ops) for a in archs}) == len(archs)
    lo, hi = NEAR_WINDOW
    for a in archs:
        assert lo * t <= predict_arch_ms(a, table) <= hi * t


def test_scale_makes_the_near_nets_predicted_at_their_measurement(space_table, monkeypatch):
    """The runtime runs every net 1.6x its prediction: the refined table predicts them there,
    keeps the ranking (one scale), records the nets, and refining again does not compound."""
    space, table = space_table

    def fake_measure(space, *, nets, **kw):  # noqa: ANN001
        out = {k: {"ms": 1.6 * predict_arch_ms(a, table)} for k, a in nets.items()}
        out[NOISE] = {"ms": 0.5, "noise_floor": 0.03}
        out[REFERENCE] = {"ms": 0.5}
        return out

    monkeypatch.setattr("directnas.latency.measure.measure_space", fake_measure)
    t = mid_target(space, table)
    refined = refine_near_target(table, space, t, backend="torch-cpu", proto=FAST, n=5)
    near = refined.meta["near_target"]
    assert near["scale"] == pytest.approx(1.6) and len(near["nets"]) >= 1
    for row in near["nets"]:
        a = Arch(space, row["ops"])
        assert predict_arch_ms(a, refined) == pytest.approx(row["measured_ms"], rel=1e-6)
    other = Arch(space, [l.candidates[-1] for l in space.layers])
    assert predict_arch_ms(other, refined) == pytest.approx(1.6 * predict_arch_ms(other, table), rel=1e-6)
    assert refined.correction is not None and refined.correction.fit["near_target_scale"] == pytest.approx(1.6)
    # the fastest net was timed beside them (what a relative target is a multiple of), not scaled in
    fast = near["fastest"]
    assert fast["ops"] == list(nt.fastest_arch(space, table).ops)
    assert fast["predicted_ms"] == pytest.approx(min(predict_arch_ms(Arch(space, list(ops)), table)
                                                     for ops in _all_ops(space)))
    assert fast["measured_ms"] == pytest.approx(1.6 * fast["predicted_ms"])
    # saved and loaded, then refined again: still 1.6x the profile's prediction, not 1.6^2
    again = refine_near_target(refined, space, t, backend="torch-cpu", proto=FAST, n=5)
    assert predict_arch_ms(other, again) == pytest.approx(1.6 * predict_arch_ms(other, table), rel=1e-6)


def test_real_measurement_records_nets_and_noise(space_table, tmp_path):
    space, table = space_table
    t = mid_target(space, table)
    refined = refine_near_target(table, space, t, backend="torch-cpu", proto=FAST, n=3)
    refined.save(tmp_path / "near.json")
    back = LatencyTable.load(tmp_path / "near.json")
    near = back.meta["near_target"]
    assert near["target_ms"] == pytest.approx(t) and near["scale"] > 0
    assert all(r["measured_ms"] > 0 and r["predicted_ms"] > 0 for r in near["nets"])
    assert near["reference_ms"] > 0 and near["noise_floor"] is not None


def test_target_beyond_the_space_keeps_the_table(space_table, monkeypatch):
    space, table = space_table
    monkeypatch.setattr(nt, "NEAR_WINDOW", (0.85, 1.10))
    slowest = predict_arch_ms(Arch(space, [max(l.candidates, key=lambda c: c != "zero") for l in space.layers]),
                              table)
    out = refine_near_target(table, space, 100 * slowest + 100, backend="torch-cpu", proto=FAST)
    assert out is table or "near_target" not in out.meta


def test_profile_command_re_anchors_near_a_target(tmp_path, tiny_space_yaml, capsys):
    from directnas.cli.main import main

    out = tmp_path / "t.json"
    assert main(["profile", "--space", str(tiny_space_yaml), "--out", str(out), "--near-target", "1.5x",
                 "--near-target-nets", "3", "--threads", "1", "--repeats", "3", "--warmup", "1",
                 "--rounds", "2"]) == 0
    printed = capsys.readouterr().out
    near = LatencyTable.load(out).meta.get("near_target")
    assert near and 1 <= len(near["nets"]) <= 3 and "re-anchored" in printed


def test_relative_target_is_taken_of_the_fastest_net_as_timed(space_table, monkeypatch):
    """`1.5x` on a re-anchored table is 1.5 times the fastest net as timed beside the near-target
    nets, not as the profile predicts it; a target in ms is left alone."""
    from directnas.latency.target import resolve_target

    space, table = space_table
    monkeypatch.setattr("directnas.latency.measure.measure_space", runs_at(1.3, table))
    t = mid_target(space, table)
    refined = refine_near_target(table, space, t, backend="torch-cpu", proto=FAST, n=5)
    assert refined.meta["near_target"]["scale"] == pytest.approx(1.3)
    fastest = predict_arch_ms(nt.fastest_arch(space, table), table)
    assert resolve_target("1.5x", space, refined) == pytest.approx(1.5 * 1.3 * fastest, abs=1e-4)
    assert resolve_target(0.7, space, refined) == 0.7


def test_anchor_target_times_nets_again_when_the_fastest_net_moves_the_target(space_table,
                                                                            monkeypatch):
    """The fastest net runs at its prediction, every other net at 0.8x: the relative target (of
    the fastest net as timed) lies above where the first nets were timed, so a second set is
    drawn and timed near it; a run's search then resolves that T."""
    from directnas.latency.target import resolve_target

    space, table = space_table
    calls = []

    def fake_measure(space, *, nets, **kw):  # noqa: ANN001
        calls.append(sorted(nets))
        out = {k: {"ms": (1.0 if k == nt.FASTEST else 0.8) * predict_arch_ms(a, table)}
               for k, a in nets.items()}
        out[NOISE] = {"ms": 0.5, "noise_floor": 0.03}
        return out

    monkeypatch.setattr("directnas.latency.measure.measure_space", fake_measure)
    fastest = predict_arch_ms(nt.fastest_arch(space, table), table)
    refined, ms = nt.anchor_target(table, space, "1.1x", backend="torch-cpu", proto=FAST, n=4)
    near = refined.meta["near_target"]
    assert ms == pytest.approx(1.1 * fastest, abs=1e-4)
    assert near["resolved"]["fastest_measured_ms"] == pytest.approx(fastest)
    assert near["resolved"]["passes"] == 2 and len(calls) == 2
    # the second nets were drawn near T / 0.8 on the profile, so they run near T
    assert near["target_ms"] == pytest.approx(ms / 0.8, rel=1e-3)
    lo, hi = NEAR_WINDOW
    assert near["nets"] and all(lo * ms <= r["measured_ms"] <= hi * ms for r in near["nets"])
    assert resolve_target("1.1x", space, refined) == ms
    # a target in ms: one pass, unchanged
    calls.clear()
    _, ms2 = nt.anchor_target(table, space, 1.1 * fastest, backend="torch-cpu", proto=FAST, n=4)
    assert ms2 == pytest.approx(1.1 * fastest) and len(calls) == 1


def test_the_near_target_record_is_typed_and_its_file_format_unchanged(space_table, monkeypatch,
                                                                       tmp_path):
    """``anchor_target`` writes a ``NearTarget`` into the table's meta as the same dict the
    readers have always read; ``NearTarget.of`` reads it back, field for field."""
    import json

    space, table = space_table
    monkeypatch.setattr("directnas.latency.measure.measure_space", runs_at(1.2, table))
    # a multiple of the fastest net with a net predicted near it (the tiny space has few nets)
    fastest = predict_arch_ms(nt.fastest_arch(space, table), table)
    spec = f"{round(mid_target(space, table) / fastest, 3):g}x"
    refined, ms = nt.anchor_target(table, space, spec, backend="torch-cpu", proto=FAST, n=3)
    refined.save(tmp_path / "near.json")
    stored = json.loads((tmp_path / "near.json").read_text())["meta"]["near_target"]
    near = nt.NearTarget.of(LatencyTable.load(tmp_path / "near.json"))
    assert near is not None and nt.NearTarget.of(table) is None
    assert json.dumps(near.to_dict()) == json.dumps(stored)  # same keys, same order
    assert list(stored) == ["target_ms", "window", "scale", "nets", "reference_ms", "noise_floor",
                            "rounds", "backend", "fastest", "resolved"]
    assert near.scale == pytest.approx(1.2) and near.backend == "torch-cpu" and near.rounds == 2
    assert all(r.ratio == pytest.approx(1.2) for r in near.nets) and near.fastest.ratio is None
    assert near.resolved.spec == spec and near.resolved.target_ms == ms
    assert near.window == tuple(NEAR_WINDOW) and near.reference_ms == 0.5

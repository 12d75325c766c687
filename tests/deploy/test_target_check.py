"""The target check: the artifact timed beside the near-target nets, judged at today's speed."""

import pytest

from directnas.deploy import target_check as tc
from directnas.runtimes import Protocol, by_format
from directnas.latency.near_target import FASTEST, NearTarget, ResolvedTarget, TimedNet
from directnas.latency.measure import NOISE
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace


@pytest.fixture(scope="module")
def space():
    from conftest import TINY_SPACE

    return SearchSpace.from_dict(TINY_SPACE)


def near_record(space, then_ms) -> NearTarget:  # noqa: ANN001
    """A near-target record as ``anchor_target`` writes it: nets near T, the fastest net, a
    relative target resolved on it."""
    archs = [Arch(space, [l.candidates[i % len(l.candidates)] for l in space.layers]) for i in (1, 2)]
    fastest = Arch(space, [l.candidates[0] for l in space.layers])
    return NearTarget(target_ms=2 * then_ms[2], scale=1.0,
                      nets=[TimedNet(list(a.ops), t, t, ratio=1.0) for a, t in zip(archs, then_ms[:2])],
                      reference_ms=1.0, noise_floor=0.01, rounds=2, backend="torch-cpu",
                      fastest=TimedNet(list(fastest.ops), then_ms[2], then_ms[2]),
                      resolved=ResolvedTarget("2x", then_ms[2], 2 * then_ms[2], 2 * then_ms[2], 1))


def test_speed_is_the_median_of_now_over_then_and_the_target_moves_with_it(space, tmp_path,
                                                                           monkeypatch):
    """The machine runs every anchor 0.8x its session's latency (faster now): T at today's speed
    is 0.8 T, and an artifact at 0.7 T in ms is 0.875 T of it, held; in ms it is not."""
    then = [0.20, 0.22, 0.10]
    near = near_record(space, then)
    calls = {}

    def fake_measure(space, *, nets, extra, rounds, **kw):  # noqa: ANN001
        calls["nets"], calls["rounds"] = set(nets), rounds
        assert set(extra) == {tc.ARTIFACT}
        now = {"near0": 0.8 * then[0], "near1": 0.8 * then[1], FASTEST: 0.8 * then[2]}
        out = {k: {"ms": v, "spread_ms": 0.0} for k, v in now.items()}
        out[tc.ARTIFACT] = {"ms": 0.7 * 0.2, "spread_ms": 0.001}
        out[NOISE] = {"ms": 0.9, "noise_floor": 0.04}
        return out

    monkeypatch.setattr("directnas.latency.measure.measure_space", fake_measure)
    art = by_format("torchscript").export(Arch(space, near.nets[0].ops).build().eval(),
                                          (1, 1, 16, 16), tmp_path / "m")
    c = tc.check_target("torchscript", art, space, near, 0.2, backend="torch-cpu")
    assert calls["nets"] == {"near0", "near1", FASTEST} and calls["rounds"] == tc.CHECK_ROUNDS
    assert c["speed_now_over_then"] == pytest.approx(0.8)
    assert c["target_now_ms"] == pytest.approx(0.16)
    assert c["ratio"] == pytest.approx(0.875) and c["held"]
    assert c["ratio_ms"] == pytest.approx(0.7) and not c["held_ms"]
    rel = c["relative"]
    assert rel["fastest_now_ms"] == pytest.approx(0.08)
    assert rel["ratio"] == pytest.approx(0.14 / (2 * 0.08))
    text = tc.describe(c)
    assert f"**{c['ratio']:.2f} T**" in text and "inside" in text and "0.80x" in text


def test_a_real_check_times_every_anchor_and_the_artifact(space, tmp_path):
    """torch-cpu, a torchscript artifact of one anchor net: every figure is measured (> 0), and
    the artifact runs within a few x of the same net in eager torch."""
    near = near_record(space, [1.0, 1.0, 1.0])
    art = by_format("torchscript").export(Arch(space, near.nets[0].ops).build().eval(),
                                          (1, 1, 16, 16), tmp_path / "m")
    c = tc.check_target("torchscript", art, space, near, 1.0, backend="torch-cpu",
                        proto=Protocol(warmup=1, repeats=5, rounds=2), rounds=2)
    assert c["rounds"] == 2 and c["threads"] == 1
    assert {r["name"] for r in c["anchors"]} == {"near0", "near1", FASTEST}
    assert all(r["now_ms"] > 0 for r in c["anchors"]) and c["artifact_ms"] > 0
    assert c["noise_floor"] is not None and c["reference_ms"] > 0
    eager = next(r["now_ms"] for r in c["anchors"] if r["name"] == "near0")
    assert 0.2 < c["artifact_ms"] / eager < 5


def test_no_near_target_nets_is_a_clear_error(space, tmp_path):
    with pytest.raises(ValueError, match="near-target nets"):
        tc.check_target("torchscript", tmp_path / "m.pt", space, NearTarget(1.0, 1.0), 1.0,
                        backend="torch-cpu")


def test_the_pipeline_skips_the_check_when_the_artifact_runs_elsewhere(space, tmp_path):
    """cuda searches ship TorchScript, timed on the CPU: no like-for-like check, said so."""
    from directnas.pipeline.export import target_check_stage

    said = []
    near = near_record(space, [1.0, 1.0, 1.0])
    out = target_check_stage(tmp_path, space, {"format": "torchscript", "path": "m.pt"}, near, 1.0,
                             backend="cuda", protocol={}, say=said.append)
    assert out is None and "skipped" in said[0] and not (tmp_path / "target_check.json").exists()

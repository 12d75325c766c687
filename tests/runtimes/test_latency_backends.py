"""Latency backends (every runtime of the registry), statistics and interleaved measuring."""

import importlib.util

import numpy as np
import pytest
import torch

from directnas.cli.main import main
from directnas.errors import UserError
from directnas import runtimes
from directnas.runtimes.common import as_numpy
from directnas.runtimes.onnxruntime_cpu import ort_session, to_onnx
from directnas.latency.measure import (NOISE, REFERENCE, Protocol, measure_interleaved,
                                       measure_module, profile_space, summarize, time_runner)
from directnas.space.ops import build_op
from directnas.space.space import SearchSpace

FAST = Protocol(threads=1, warmup=1, repeats=3)


def test_registry_has_the_three_backends():
    assert {"torch-cpu", "onnxruntime-cpu", "cuda"} <= set(runtimes.names())


RUNTIMES = [pytest.param(n, marks=pytest.mark.skipif(bool(runtimes.get(n).unavailable()),
                                                     reason=str(runtimes.get(n).unavailable())))
            for n in runtimes.names()]


def _shape(out):
    return tuple(out.shape) if isinstance(out, torch.Tensor) else as_numpy(out).shape


@pytest.mark.parametrize("name", RUNTIMES)
def test_every_runtime_times_a_module_without_changing_it(name):
    """Each runtime's runner computes the module's output shape and is timed; the caller's
    module keeps its mode and weights; the versions name torch."""
    rt = runtimes.get(name)
    m = build_op("k3_e3", 8, 8, 1, residual=True).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    run = rt.runner(m, (1, 8, 6, 6), FAST)
    assert _shape(run()) == (1, 8, 6, 6)
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    times = time_runner(run, FAST)
    assert len(times) == FAST.repeats and all(t > 0 for t in times)
    assert rt.versions()["torch"] == torch.__version__


def test_onnx_export_computes_what_torch_computes():
    m = build_op("k5_e3", 8, 8, 1, residual=True).eval()
    for p in m.parameters():  # non-trivial weights and BN statistics
        torch.nn.init.normal_(p, std=0.3)
    x = np.random.default_rng(0).standard_normal((2, 8, 6, 6), dtype=np.float32)
    sess = ort_session(to_onnx(m, (2, 8, 6, 6)), threads=1)
    (y,) = sess.run(None, {"x": x})
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    assert y.shape == ref.shape and np.allclose(y, ref, atol=1e-4)


def test_onnxruntime_profile_covers_space_and_records_protocol(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    proto = Protocol(batch_size=2, threads=1, warmup=1, repeats=3)
    table = profile_space(space, backend="onnxruntime-cpu", proto=proto)
    table.check_covers(space)
    assert all(v["ms"] > 0 for v in table.entries.values())
    m = table.meta
    assert (m["backend"], m["batch_size"], m["threads"], m["dtype"]) == ("onnxruntime-cpu", 2, 1, "float32")
    assert m["onnxruntime"] and m["stat"] == "p10" and m["noise_floor"] >= 0


def test_onnxruntime_refuses_other_dtypes():
    with pytest.raises(UserError, match="float32 only"):
        measure_module(build_op("k3_e3", 8, 8, 1, residual=True), (1, 8, 4, 4),
                       backend="onnxruntime-cpu", proto=Protocol(threads=1, dtype="float16"))


def test_torch_cpu_bfloat16_runs():
    r = measure_module(build_op("k3_e3", 8, 8, 1, residual=True), (1, 8, 4, 4),
                       proto=Protocol(threads=1, warmup=1, repeats=2, dtype="bfloat16"))
    assert r["ms"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_user_error(capsys, tmp_path, tiny_space_yaml):
    with pytest.raises(UserError, match="cuda needs a CUDA GPU.*torch-cpu"):
        measure_module(build_op("k3_e3", 8, 8, 1, residual=True), (1, 8, 4, 4), backend="cuda")
    rc = main(["profile", "--space", str(tiny_space_yaml), "--backend", "cuda",
               "--out", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "GPU" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_cuda_measures_with_events():
    r = measure_module(build_op("k3_e3", 8, 8, 1, residual=True), (1, 8, 8, 8), backend="cuda",
                       proto=FAST)
    assert r["ms"] > 0


class FakeRunner:
    """A runner with its own clock returning scripted times."""

    def __init__(self, times):
        self.times, self.calls = list(times), 0

    def __call__(self):
        self.calls += 1

    def time_ms(self):
        self.calls += 1
        return self.times.pop(0)


def test_time_runner_uses_the_runners_own_clock():
    r = FakeRunner([5.0, 6.0, 7.0])
    assert time_runner(r, Protocol(warmup=2, repeats=3)) == [5.0, 6.0, 7.0]
    assert r.calls == 5


def test_cpu_clock_is_single_threaded_only():
    calls = []
    run = lambda: calls.append(sum(range(2000)))  # noqa: E731
    times = time_runner(run, Protocol(threads=1, warmup=0, repeats=4, clock="cpu"))
    assert len(times) == 4 and all(t >= 0 for t in times) and len(calls) == 4
    with pytest.raises(UserError, match="--threads 1"):
        time_runner(run, Protocol(threads=2, clock="cpu"))
    with pytest.raises(UserError, match="unknown clock"):
        time_runner(run, Protocol(clock="sundial"))


def test_summarize_statistics():
    times = [float(t) for t in range(1, 101)]  # 1..100
    assert summarize(times)["ms"] == pytest.approx(50.5)
    assert summarize(times, "min")["ms"] == 1.0
    assert summarize(times, "p10")["ms"] == pytest.approx(10.9)
    assert summarize(times, "mean")["ms"] == pytest.approx(50.5)
    assert summarize(times)["spread_ms"] == pytest.approx(50.5, rel=0.02)
    with pytest.raises(UserError, match="unknown statistic"):
        summarize(times, "p99")


def test_measure_interleaved_takes_the_median_over_rounds_in_shuffled_order():
    order = []

    class Logged(FakeRunner):
        def __init__(self, name, times):
            super().__init__(times)
            self.name = name

        def time_ms(self):
            order.append(self.name)
            return super().time_ms()

    # per round 2 repeats; round medians of a: 1, 3, 10 -> median 3, range 9
    a = Logged("a", [1, 1, 3, 3, 10, 10])
    b = Logged("b", [2, 2, 2, 2, 2, 2])
    c = Logged("c", [4] * 6)
    out = measure_interleaved({"a": a, "b": b, "c": c},
                              Protocol(warmup=0, repeats=2, across="median"), rounds=3, seed=1)
    assert out["a"] == {"ms": 3, "spread_ms": 9} and out["b"]["ms"] == 2 and out["c"]["ms"] == 4
    rounds = [order[i:i + 6:2] for i in range(0, 18, 6)]  # runner order in each round
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # the order changes between rounds
    with pytest.raises(UserError):
        measure_interleaved({"a": a}, Protocol(), rounds=0)


def test_measure_interleaved_min_across_rounds_keeps_the_fast_state_unscaled():
    """A host that flips between a fast and a 1.6x slow state: in the round where the net ran
    fast the reference fell in the slow state, so a reference scaling would push the net below
    its true 5 ms; ``across="min"`` keeps each runner's fastest round as it was timed."""
    def runners():
        return {"net": FakeRunner([5.0, 5.0, 8.0, 8.0, 8.0, 8.0]),  # rounds: fast, slow, slow
                REFERENCE: FakeRunner([1.6, 1.6, 1.0, 1.0, 1.0, 1.0])}  # slow, fast, fast

    out = measure_interleaved(runners(), Protocol(warmup=0, repeats=2), rounds=3)  # the default
    assert out["net"] == {"ms": 5.0, "spread_ms": 3.0}
    assert out[NOISE]["noise_floor"] == pytest.approx(0.6)  # still reported from the reference
    med = measure_interleaved(runners(), Protocol(warmup=0, repeats=2, across="median"), rounds=3)
    assert med["net"]["ms"] == pytest.approx(8.0)  # the scaled median keeps the slow state
    with pytest.raises(UserError, match="--across"):
        measure_interleaved(runners(), Protocol(across="mode"), rounds=2)


def test_profile_space_in_rounds_covers_space(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = profile_space(space, proto=FAST, rounds=2)
    table.check_covers(space)
    assert table.meta["rounds"] == 2


class Cumsum(torch.nn.Module):  # an op XNNPACK does not take (module level: workers unpickle it)
    def forward(self, x):
        return torch.cumsum(x, 1)


@pytest.mark.skipif(importlib.util.find_spec("executorch") is None, reason="executorch not installed")
def test_executorch_lowers_chunks_in_parallel_processes(monkeypatch):
    """Chunks are lowered in worker processes (one per core); the programs they return run in
    this process, and a module XNNPACK does not take is refused with its op named."""
    from directnas.runtimes.executorch_xnnpack import executorch_runners

    monkeypatch.setenv("DIRECTNAS_LOWER_WORKERS", "2")
    items = {"relu": (torch.nn.ReLU(), (1, 3, 4, 4)),
             "conv": (torch.nn.Conv2d(3, 5, 3, padding=1), (1, 3, 6, 6)),
             "pool": (torch.nn.AdaptiveAvgPool2d(1), (1, 4, 5, 5))}
    runners = executorch_runners(items, FAST, chunk=1)
    assert set(runners) == set(items)
    shapes = {k: as_numpy(r()).shape for k, r in runners.items()}
    assert shapes == {"relu": (1, 3, 4, 4), "conv": (1, 5, 6, 6), "pool": (1, 4, 1, 1)}
    assert (as_numpy(runners["relu"]()) >= 0).all()

    with pytest.raises(UserError, match="not delegated to XNNPACK"):
        executorch_runners({"a": (torch.nn.ReLU(), (1, 2)), "b": (Cumsum(), (1, 4))}, FAST, chunk=1)

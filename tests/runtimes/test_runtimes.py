"""The runtime registry: one record per runtime, looked up by backend name and by artifact
format; a runtime registered in one place is profiled, measured and exported through like the
built-in ones."""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import directnas
from directnas import runtimes
from directnas.deploy.export import parse_formats
from directnas.errors import UserError
from directnas.runtimes.common import as_numpy, frozen_copy
from directnas.runtimes.torch_cpu import torch_runner
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from directnas.utils.fileio import torch_save

BUILT_IN = ["executorch-xnnpack", "onnxruntime-cpu", "openvino-cpu", "torch-cpu", "cuda"]


def test_the_registry_holds_the_built_in_runtimes_and_formats_in_order():
    assert runtimes.names() == BUILT_IN
    assert runtimes.formats() == ["pte", "onnx", "openvino", "torchscript"]
    assert runtimes.int8_formats() == ["pte", "onnx", "openvino"]
    assert {f: runtimes.by_format(f).name for f in runtimes.formats()} == {
        "pte": "executorch-xnnpack", "onnx": "onnxruntime-cpu", "openvino": "openvino-cpu",
        "torchscript": "torch-cpu"}


def test_what_ships_for_a_backend():
    """Each backend ships its own format; cuda ships TorchScript, run and timed by torch-cpu; no
    backend or one that is not a runtime here (an imported table's) ships torch-cpu's."""
    assert {n: runtimes.for_backend(n).format for n in BUILT_IN} == {
        "executorch-xnnpack": "pte", "onnxruntime-cpu": "onnx", "openvino-cpu": "openvino",
        "torch-cpu": "torchscript", "cuda": "torchscript"}
    assert runtimes.for_backend("cuda").name == "torch-cpu"
    assert runtimes.for_backend(None).name == "torch-cpu"
    assert runtimes.for_backend("imported:proxyless-yaml").name == "torch-cpu"


def test_unknown_names_are_one_line_errors_naming_the_choices():
    with pytest.raises(UserError, match="unknown backend 'tpu': use one of cuda, executorch") as e:
        runtimes.get("tpu")
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="unknown export format 'tflite': use one of pte, onnx"):
        runtimes.by_format("tflite")
    with pytest.raises(ValueError, match="registered twice"):
        runtimes.register(runtimes.get("torch-cpu"))


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_record_is_complete(name):
    rt = runtimes.get(name)
    assert rt.suffix.startswith(".") and rt.format in runtimes.formats()
    assert "{name}" in rt.usage and "{shape}" in rt.usage
    assert rt.versions()["torch"] == torch.__version__
    owner = runtimes.by_format(rt.format)
    assert owner is rt or owner.name == rt.artifact_runtime


# ---- a runtime added in one place --------------------------------------------------------------
FAKE = "fake-eager"


def _write(net, shape, path):  # noqa: ANN001
    torch_save(path, frozen_copy(net))  # the whole module, pickled


def _load(path, x, threads):  # noqa: ANN001
    net = torch.load(path, weights_only=False)

    def run():
        with torch.inference_mode():
            return net(x)

    return run


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Eager torch registered as another runtime with its own ``.fake`` artifact; the modules it
    was asked to time are logged.  Removed again afterwards."""
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    timed: list[tuple[int, ...]] = []

    def runner(module, shape, proto):  # noqa: ANN001
        timed.append(tuple(shape))
        return torch_runner(module, shape, proto)

    rt = runtimes.register(runtimes.Runtime(
        name=FAKE, format="fake", suffix=".fake", runner=runner, write=_write, load=_load,
        version=lambda: "fake 1.0", versions=lambda: {"torch": torch.__version__, "fake": "1.0"},
        usage='import torch\nnet = torch.load("{name}", weights_only=False)\n'
              'print(net(torch.rand({shape})).argmax(1))',
        any_batch=True))
    yield rt, timed
    runtimes.unregister(FAKE)
    assert FAKE not in runtimes.names() and "fake" not in runtimes.formats()


def test_a_registered_runtime_is_profiled_measured_and_exported_through(
        fake, tmp_path, tiny_space_dict, tiny_idx_dir):
    rt, timed = fake
    space = SearchSpace.from_dict(tiny_space_dict)
    table = directnas.profile(space, backend=FAKE, repeats=3, warmup=1, rounds=2)
    table.check_covers(space)
    assert table.meta["backend"] == FAKE and table.meta["fake"] == "1.0"
    assert len(timed) >= len(table.entries)  # every op (and calibration net) timed by it

    net = Arch(space, [layer.candidates[-1] for layer in space.layers]).build()
    before = copy.deepcopy(net.state_dict())
    n = len(timed)
    r = directnas.measure(net, (1, 16, 16), backend=FAKE, repeats=3, warmup=1)
    assert timed[n:] == [(1, 1, 16, 16)] and r["ms"] > 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())

    assert parse_formats("all")[-1] == "fake"
    model = tmp_path / "train" / "model.pt"
    torch_save(model, {"kind": "directnas-model", "name": "searched",
                       "arch": Arch(space, [l.candidates[-1] for l in space.layers]).to_dict(),
                       "state_dict": net.state_dict(), "input_shape": (1, 16, 16),
                       "num_classes": 4, "mean": [0.5], "std": [0.25]})
    s = directnas.export(model, tmp_path / "out", formats="fake", data=str(tiny_idx_dir),
                         rounds=2, limit=50).artifacts["fake"]
    art = Path(s["path"])
    assert art.name == "model.fake" and art.is_file() and s["size_bytes"] == art.stat().st_size
    assert s["latency_backend"] == FAKE and s["runtime_version"] == "fake 1.0"
    assert s["top1_agreement"] == 1.0 and s["max_abs_diff"] < 1e-5 and s["test_images"] == 50
    assert 'torch.load("model.fake"' in (tmp_path / "out" / "README.md").read_text()

    x = torch.rand(3, 1, 16, 16)
    with torch.inference_mode():
        want = directnas.load(model)(x).numpy()
    assert np.allclose(as_numpy(rt.load(art, x, 1)()), want, atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("executorch") is None, reason="executorch not installed")
def test_parallel_lowering_does_not_share_a_file_per_weight(tmp_path):
    """Chunks reach the lowering workers as bytes: with 150 open files allowed, two nets of 200
    weight tensors each still lower in parallel (shared tensors would take a file each)."""
    script = tmp_path / "lower.py"
    script.write_text(
        "import resource, sys, torch\n"
        "from torch import nn\n"
        "from directnas.runtimes.base import Protocol\n"
        "from directnas.runtimes import executorch_xnnpack as et\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (150, 150))\n"
        "et.log.warning = lambda *a, **k: sys.exit('fell back to lowering in this process')\n"
        "nets = {f'n{i}': (nn.Sequential(*[nn.Linear(4, 4) for _ in range(100)]), (1, 4)) for i in range(2)}\n"
        "runners = et.executorch_runners(nets, Protocol(), chunk=1)\n"
        "assert et.lowering_workers(2) == 2 and len(runners) == 2\n")
    env = {**os.environ, "DIRECTNAS_LOWER_WORKERS": "2"}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

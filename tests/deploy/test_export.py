"""directnas export: artifacts that agree with PyTorch on the test set, are timed in their
runtime, and run where directnas cannot be imported."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import directnas
from directnas import runtimes
from directnas.cli.main import main
from directnas.errors import UserError
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from helpers import TINY_SPACE


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_idx_dir):
    tmp = tmp_path_factory.mktemp("export")
    os.environ.setdefault("DIRECTNAS_CACHE", str(tmp / "cache"))
    space = SearchSpace.from_dict(TINY_SPACE)
    arch = tmp / "arch.json"
    Arch(space, [layer.candidates[-1] for layer in space.layers]).save(arch)
    out = tmp / "train"
    assert main(["train", "--arch", str(arch), "--data", str(tiny_idx_dir), "--epochs", "1",
                 "--out", str(out), "--batch-size", "64", "--threads", "1", "--repeats", "3",
                 "--warmup", "1", "--rounds", "2"]) == 0
    return out


# runs the README's snippet of the artifact with only the runtimes importable: directnas is blocked
BLOCK = textwrap.dedent("""
    import sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "directnas":
                raise ImportError("directnas is not installed here")
    sys.meta_path.insert(0, Block())
    try:
        import directnas
        raise SystemExit("directnas was importable")
    except ImportError:
        pass
""")


def readme_snippet(readme: str) -> str:
    """The first python block of an export README."""
    return readme.split("```python\n", 1)[1].split("```", 1)[0]


def seeded(snippet: str, model) -> tuple[str, int]:  # noqa: ANN001
    """The snippet with its random input seeded, and the class the trained net gives that input."""
    shape = (1, 1, 16, 16)
    if "torch.rand" in snippet:
        torch.manual_seed(0)
        x, seed = torch.rand(*shape), "import torch; torch.manual_seed(0)\n"
    else:
        np.random.seed(0)
        x = torch.from_numpy(np.random.rand(*shape).astype(np.float32))
        seed = "import numpy as np; np.random.seed(0)\n"
    with torch.inference_mode():
        return seed + snippet, int(directnas.load(model)(x).argmax(1))


FORMATS = [pytest.param(f, marks=pytest.mark.skipif(
               bool(runtimes.by_format(f).unavailable()),
               reason=str(runtimes.by_format(f).unavailable())))
           for f in runtimes.formats()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_agrees_with_pytorch_and_runs_without_directnas(trained, tiny_idx_dir, tmp_path,
                                                               fmt):
    out = tmp_path / fmt
    assert main(["export", str(trained), "--format", fmt, "--out", str(out), "--data",
                 str(tiny_idx_dir), "--rounds", "2"]) == 0
    r = json.loads((out / "export.json").read_text())
    for key in ("top1_agreement", "max_abs_diff", "latency_ms", "noise_floor", "format",
                "runtime_version"):
        assert key in r, key
    assert r["format"] == fmt and r["latency_ms"] > 0 and r["noise_floor"] >= 0
    assert r["top1_agreement"] >= 0.99 and r["max_abs_diff"] < 1e-3
    assert abs(r["accuracy"] - r["torch_accuracy"]) <= 0.01
    metrics = json.loads((trained / "metrics.json").read_text())
    assert r["torch_accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    readme = (out / "README.md").read_text()
    assert "pixel values in [0, 1]" in readme
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    snippet, want = seeded(readme_snippet(readme), trained)
    proc = subprocess.run([sys.executable, "-c", BLOCK + snippet], cwd=out, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    classes = re.findall(r"\d+", proc.stdout.strip().splitlines()[-1])
    assert classes == [str(want)], proc.stdout  # one image: the class PyTorch gives it


def test_export_refuses_an_unknown_format(trained, tmp_path, capsys):
    assert main(["export", str(trained), "--format", "tflite", "--out", str(tmp_path / "x")]) == 2
    assert "unknown export format" in capsys.readouterr().err


def test_model_data_reads_what_run_records(tmp_path):
    """`directnas run` trains on a Dataset object and records it as 'Dataset:<name>'; export then
    takes the embedded dataset by name and asks for --data otherwise."""
    import json as _json

    from directnas.deploy.export import model_data

    for recorded, want in (("Dataset:fashion-mnist", "fashion-mnist"), ("fashion-mnist", "fashion-mnist"),
                           (str(tmp_path), str(tmp_path))):
        (tmp_path / "train_config.json").write_text(_json.dumps({"data": recorded}))
        assert model_data(tmp_path) == want
    (tmp_path / "train_config.json").write_text(_json.dumps({"data": "TensorData:mine"}))
    with pytest.raises(UserError, match="--data"):
        model_data(tmp_path)


def test_native_stderr_silenced_drops_fd2_writes_and_restores_it(capfd):
    import os

    from directnas.runtimes.common import native_stderr_silenced

    with native_stderr_silenced():
        os.write(2, b"[threadpool.cpp:66] Resetting threadpool\n")  # what C++ code does
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert "threadpool" not in err and "after" in err

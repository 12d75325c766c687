"""``directnas.export`` and ``directnas.compress`` from Python on generated tensors: the artifact
agrees with PyTorch, the compressed net is smaller and loads like a trained one, and the model
file has one writer and one reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import directnas
from directnas.errors import UserError
from directnas.models.model_file import ModelFile, load_model
from directnas.pipeline.runfolder import RunFolder
from directnas.space.space import SearchSpace
from helpers import TINY_SPACE, make_images

FAST_LATENCY = {"repeats": 3, "warmup": 1, "threads": 1}


def _tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_images(n, np.random.default_rng(seed))
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny searched-space net trained a few steps (``quick``) on generated tensors."""
    space = SearchSpace.from_dict(TINY_SPACE)
    arch = directnas.Arch(space, [layer.candidates[0] for layer in space.layers])
    out = tmp_path_factory.mktemp("api") / "train"
    return directnas.train(arch, _tensors(600, 0), test=_tensors(200, 1), quick=True, out=out,
                           device="cpu", batch_size=32, lr=0.05, threads=1, protocol=FAST_LATENCY)


def test_export_from_python_agrees_with_pytorch(trained, tmp_path):
    images = _tensors(64, 2)
    r = directnas.export(trained, tmp_path / "export", formats="torchscript", data=images,
                         rounds=2)
    assert isinstance(r, directnas.ExportResult) and set(r.artifacts) == {"torchscript"}
    path = r.path("torchscript")
    assert path.is_file() and (tmp_path / "export" / "export.json").is_file()
    x = images[0].float() / 255
    with torch.inference_mode():
        ours = torch.jit.load(str(path))(x)
        theirs = directnas.load(trained.out)(x)
    assert torch.allclose(ours, theirs, atol=1e-4)
    a = r.artifacts["torchscript"]
    assert a["top1_agreement"] == 1.0 and a["test_images"] == 64 and a["latency_ms"] > 0
    # the same call on the run folder's model.pt, with the data it names, agrees as well
    again = directnas.export(trained.out / "model.pt", tmp_path / "again", formats="onnx",
                             data=images, rounds=2)
    assert again.artifacts["onnx"]["top1_agreement"] == 1.0


def test_compress_from_python_is_smaller_and_loads(trained, tmp_path):
    data, test = _tensors(600, 0), _tensors(200, 1)
    r = directnas.compress(trained, data, test=test, out=tmp_path / "c", method="prune,share,huffman",
                           sparsity=0.6, uniform=True, quick=True, threads=1, valid_images=200,
                           latency_repeats=3, finetune={"batch_size": 32})
    assert isinstance(r, directnas.CompressResult) and r.ratio > 1
    assert r.compressed_path == tmp_path / "c" / "model.dnz" and r.compressed_path.is_file()
    assert r.metrics == json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert r.file.compression["methods"] == ["prune", "share", "huffman"]
    net = directnas.load(tmp_path / "c")
    x, y = test
    with torch.inference_mode():
        acc = float((net(x.float() / 255).argmax(1) == y).float().mean())
    assert acc == pytest.approx(r.metrics["accuracy_after"], abs=1.01 / len(y))
    with torch.inference_mode():  # the record in memory is the file on disk
        assert torch.equal(r.file.classifier()(x[:4].float() / 255), net(x[:4].float() / 255))


def test_compress_options_are_checked_in_the_library(trained, tmp_path):
    data = _tensors(64, 0)
    with pytest.raises(UserError, match=r"sparsity \(--sparsity\) 1.5 must be a fraction"):
        directnas.compress(trained, data, out=tmp_path / "a", method="prune", sparsity=1.5)
    with pytest.raises(UserError, match=r"unknown compress option\(s\) \['sparsty'\]"):
        directnas.compress(trained, data, out=tmp_path / "b", method="prune", sparsty=0.5)
    with pytest.raises(UserError, match="unknown method"):
        directnas.compress(trained, data, out=tmp_path / "c", method="prune,zip")
    with pytest.raises(UserError, match="unknown export format"):
        directnas.compress(trained, data, out=tmp_path / "d", method="prune", export="tflite")
    assert not any((tmp_path / d).exists() for d in "abcd")  # refused before anything is written


def test_model_file_has_one_writer_and_one_reader(trained, tmp_path):
    mf = ModelFile.read(trained.out)
    assert mf.name == trained.file.name and mf.input_shape == (1, 16, 16) and mf.arch
    assert mf.recipe == trained.file.recipe and mf.compression is None
    copy = mf.save(tmp_path / "m.pt")
    net, again = load_model(copy)
    assert not net.training and again.state_dict.keys() == mf.state_dict.keys()
    torch.save({"kind": "something else"}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="is not a model written by"):
        ModelFile.read(tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not found"):
        ModelFile.read(tmp_path / "nope")


def test_run_folder_names_every_path(tmp_path):
    run = RunFolder(tmp_path)
    assert run.latency == tmp_path / "latency.json" and run.arch == tmp_path / "search" / "arch.json"
    t = run.target("1.5x", several=True)
    assert t.model == tmp_path / "t1.5x" / "train" / "model.pt"
    assert t.near_latency == tmp_path / "t1.5x" / "latency_near.json"
    assert run.target("2", several=False) == run

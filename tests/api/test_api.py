"""The library API on small generated data: search -> train -> load -> predict, the data forms,
configs validated in the library, devices, and latency measurement that leaves the net alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import directnas
from directnas.cli.main import main
from directnas.errors import UserError
from directnas.space.space import SearchSpace
from helpers import TINY_SPACE, fake_table, make_images

FAST_LATENCY = {"repeats": 3, "warmup": 1, "threads": 1}
SEARCH = {"warmup_epochs": 1, "epochs": 1, "max_steps": 6, "batch_size": 32, "valid_size": 64,
          "arch_every": 1, "threads": 1}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")


class StripeImages(torch.utils.data.Dataset):
    """A user-written map-style Dataset: (C, H, W) float images in [0, 1] and int labels."""

    def __init__(self, n: int, seed: int) -> None:
        x, y = make_images(n, np.random.default_rng(seed))
        self.x = torch.from_numpy(x).float().div(255).unsqueeze(1)
        self.y = [int(v) for v in y]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], self.y[i]


def _tensors(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = make_images(n, np.random.default_rng(seed))
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def _accuracy(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def test_search_train_load_predict(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    space = SearchSpace.from_dict(TINY_SPACE)
    found = directnas.search(space, StripeImages(600, 0), target_latency="1.5x",
                             table=fake_table(space), device="cpu", seed=1, **SEARCH)
    assert isinstance(found.arch, directnas.Arch) and found.out is None
    assert found.predicted_latency_ms <= found.target_latency_ms
    assert len(found.history) >= 2 and "probs" in found.history[-1] and len(found.epochs) == 2
    test_x, test_y = _tensors(200, 1)
    out = tmp_path / "train"
    trained = directnas.train(found, StripeImages(600, 2), test=(test_x, test_y), epochs=3,
                              out=out, device="cpu", batch_size=32, lr=0.05, threads=1,
                              protocol=FAST_LATENCY)
    m = trained.metrics
    assert m["test_accuracy"] > 0.6 and m["latency_ms"] > 0 and m["predicted_latency_ms"] > 0
    assert json.loads((out / "metrics.json").read_text())["test_accuracy"] == m["test_accuracy"]
    net = directnas.load(out)
    assert not net.training and all(p.dtype == torch.float32 for p in net.parameters())
    images = test_x.float() / 255  # (N, C, H, W) in [0, 1]: the net normalises inside
    assert _accuracy(net, images, test_y) == pytest.approx(m["test_accuracy"], abs=1.01 / len(test_y))
    assert torch.equal(net(images[:8]).argmax(1), trained.model(images[:8]).argmax(1))
    assert torch.equal(directnas.load(out / "model.pt")(images[:4]), net(images[:4]))


def test_data_forms_give_the_same_dataset():
    from directnas.data.sources import as_dataset

    x, y = _tensors(50, 3)
    as_uint8 = as_dataset((x, y))
    as_float = as_dataset((x.float() / 255, y))
    as_items = as_dataset(StripeImages(50, 3))
    for d in (as_float, as_items):
        assert torch.equal(d.train.images, as_uint8.train.images)
        assert torch.equal(d.train.labels, as_uint8.train.labels)
    assert as_uint8.train.num_classes == 4 and len(as_uint8.test) == 0
    assert as_dataset((x, y), size=24).input_shape == (1, 24, 24)
    with pytest.raises(UserError, match=r"float images must lie in \[0, 1\]"):
        as_dataset((x.float(), y))
    with pytest.raises(UserError, match="labels must be integer class indices"):
        as_dataset((x, -y - 1))


def test_configs_are_validated_in_the_library(tmp_path):
    space = SearchSpace.from_dict(TINY_SPACE)
    arch = directnas.Arch(space, [layer.candidates[0] for layer in space.layers])
    data = _tensors(64, 4)
    with pytest.raises(UserError, match=r"unknown training option\(s\) \['epoch'\]"):
        directnas.train(arch, data, epoch=1)
    with pytest.raises(UserError, match="training option ema_decay must be in"):
        directnas.train(arch, data, ema_decay=1.5, out=tmp_path / "t")
    assert not (tmp_path / "t").exists()
    with pytest.raises(UserError, match=r"unknown search option\(s\) \['lr_arch'\]"):
        directnas.search(space, data, table=fake_table(space), lr_arch=0.1)
    with pytest.raises(UserError, match="is not a target latency"):
        directnas.search(space, data, table=fake_table(space), target_latency="fast")
    with pytest.raises(UserError, match="unknown latency option"):
        directnas.profile(space, repeat=3)


def test_measurement_leaves_the_callers_net_unchanged():
    space = SearchSpace.from_dict(TINY_SPACE)
    net = directnas.Arch(space, [layer.candidates[-1] for layer in space.layers]).build().train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    lat = directnas.measure(net, (1, 16, 16), dtype="bfloat16", channels_last=True, **FAST_LATENCY)
    assert lat["ms"] > 0 and net.training
    for k, v in net.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
        assert v.is_contiguous()


def test_cli_train_epochs_and_bfloat16_keep_the_trained_net(tmp_path, tiny_idx_dir, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    space = SearchSpace.from_dict(TINY_SPACE)
    arch = tmp_path / "arch.json"
    directnas.Arch(space, [layer.candidates[0] for layer in space.layers]).save(arch)
    out = tmp_path / "D"
    assert main(["train", "--arch", str(arch), "--data", str(tiny_idx_dir), "--epochs", "1",
                 "--dtype", "bfloat16", "--out", str(out), "--batch-size", "64", "--device", "cpu",
                 "--threads", "1", "--repeats", "3", "--warmup", "1"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 1
    from directnas.data.readers import load_dataset

    test = load_dataset(tiny_idx_dir).test
    acc = _accuracy(directnas.load(out), test.images.float() / 255, test.labels)
    assert acc == pytest.approx(m["test_accuracy"], abs=1.01 / len(test))


def test_plain_image_folder_searches_on_the_cifar_preset(tmp_path, monkeypatch):
    """3 class folders of 32x32 RGB PNGs, no train/ or test/ and no YAML: the cifar preset
    takes 3 classes from the data."""
    from PIL import Image

    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    root = tmp_path / "pets"
    for c, name in enumerate(("cat", "dog", "owl")):
        (root / name).mkdir(parents=True)
        for i in range(20):
            a = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            a[:, :, c] += 150
            Image.fromarray(a, "RGB").save(root / name / f"{i}.png")
    cfg = tmp_path / "small.yaml"
    cfg.write_text("max_steps: 2\nvalid_size: 6\nbatch_size: 8\n")
    out = tmp_path / "run"
    assert main(["search", "--space", "cifar", "--data", str(root), "--out", str(out),
                 "--warmup-epochs", "1", "--epochs", "1", "--config", str(cfg), "--device", "cpu",
                 "--threads", "1", "--repeats", "2", "--warmup", "1",
                 "--target-latency", "1.5x"]) == 0
    resolved = json.loads((out / "search_config.json").read_text())
    assert resolved["num_classes"] == 3 and resolved["input_channels"] == 3
    assert resolved["input_size"] == 32 and resolved["space"] == "cifar"
    assert directnas.Arch.load(out / "arch.json").space.num_classes == 3


def test_plain_image_folder_carves_a_balanced_test_split(tmp_path, monkeypatch):
    from PIL import Image

    from directnas.data.readers import load_dataset

    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / ".cache"))
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.fromarray(np.full((12, 10), 20 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    d = load_dataset(tmp_path, size=16)
    assert d.input_shape == (1, 16, 16) and len(d.train) == 16 and len(d.test) == 4
    assert d.test.labels.tolist().count(0) == 2
    assert torch.equal(load_dataset(tmp_path, size=16).test.images, d.test.images)  # fixed seed


def test_devices_are_checked():
    from directnas.utils.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda:0")
        assert resolve_device("auto") == torch.device("cpu")
        space = SearchSpace.from_dict(TINY_SPACE)
        with pytest.raises(UserError, match="amp .* runs on CUDA only"):
            directnas.search(space, _tensors(64, 0), table=fake_table(space), device="cpu", amp=True)


@CUDA
@pytest.mark.parametrize("amp", [False, True])
def test_search_and_train_on_cuda(tmp_path, amp):
    space = SearchSpace.from_dict(TINY_SPACE)
    data = StripeImages(400, 0)
    found = directnas.search(space, data, target_latency="1.5x", table=fake_table(space),
                             device="cuda", amp=amp, **SEARCH)
    test_x, test_y = _tensors(200, 1)
    trained = directnas.train(found.arch, data, test=(test_x, test_y), epochs=2, device="cuda",
                              amp=amp, batch_size=32, out=tmp_path / "t", protocol=FAST_LATENCY)
    assert next(trained.model.parameters()).device.type == "cuda"
    assert trained.metrics["test_accuracy"] > 0.5
    net = directnas.load(tmp_path / "t")  # on the CPU, float32
    acc = _accuracy(net, test_x.float() / 255, test_y)
    assert acc == pytest.approx(trained.metrics["test_accuracy"], abs=0.03)


@CUDA
def test_cuda_search_draws_the_cpu_search_gates():
    """Gates and batches come from CPU generators: a CUDA search samples the same paths."""
    space = SearchSpace.from_dict(TINY_SPACE)
    data = _tensors(300, 0)
    runs = [directnas.search(space, data, table=fake_table(space), device=d, **SEARCH)
            for d in ("cpu", "cuda")]
    assert runs[0].history[0]["probs"] == runs[1].history[0]["probs"]
    assert len(runs[0].history) == len(runs[1].history)

"""MobileNetV2 baselines: faithful to the paper at 224 px, adapted to small inputs, trainable
through `directnas train --model` and `directnas baselines` with the same outputs as a search."""

import json

import pytest
import torch

from directnas.cli.main import main
from directnas.models.registry import build_named, model_names
from directnas.training.train_net import count_macs, count_params
from directnas.models.zoo.mobilenetv2 import WIDTHS, make_divisible, mobilenetv2_space, model_name

NAMES = [model_name(float(w)) for w in WIDTHS]
COMMON = ["--threads", "1", "--repeats", "5", "--warmup", "1"]


def test_registered_names():
    assert NAMES == ["mobilenetv2-0.35", "mobilenetv2-0.5", "mobilenetv2-0.75", "mobilenetv2-1.0",
                     "mobilenetv2-1.4"]
    assert set(NAMES) <= set(model_names())


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_small_input_adaptation(name):
    net = build_named(name, input_shape=(1, 28, 28), num_classes=10)
    net.eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    space = net.arch.space
    assert space.stem_stride == 1 and space.first_stride == 2  # the fashion-mnist preset's stem
    assert space.last_hw == 4  # final map 4x4, like the preset's
    assert all(op == "k3_e6" for op in net.arch.ops) and len(net.arch.ops) == 16


def test_params_and_macs_grow_with_width():
    nets = [build_named(n, input_shape=(1, 28, 28), num_classes=10) for n in NAMES]
    params = [count_params(n) for n in nets]
    macs = [count_macs(n, (1, 28, 28)) for n in nets]
    assert params == sorted(params) and len(set(params)) == len(params)
    assert macs == sorted(macs) and len(set(macs)) == len(macs)


@pytest.mark.parametrize("name,params,mmacs", [("mobilenetv2-1.0", 3_504_872, 300.8),
                                               ("mobilenetv2-0.35", 1_677_128, 59.3)])
def test_imagenet_size_matches_the_paper(name, params, mmacs):
    """At 224 px with 1000 classes the paper's strides are kept: torchvision's parameter counts
    and the paper's multiply-adds (300M for 1.0, 59M for 0.35)."""
    net = build_named(name, input_shape=(3, 224, 224), num_classes=1000)
    assert count_params(net) == params
    assert count_macs(net, (3, 224, 224)) / 1e6 == pytest.approx(mmacs, abs=0.1)
    assert net.arch.space.last_hw == 7


def test_make_divisible_matches_torchvision():
    assert [make_divisible(32 * 0.35), make_divisible(16 * 0.35), make_divisible(320 * 1.4)] == [16, 8, 448]
    assert mobilenetv2_space(1.4).head_channels == 1792 and mobilenetv2_space(0.5).head_channels == 1280


def test_train_named_baseline_writes_searched_outputs(tmp_path, tiny_idx_dir, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mbv2"
    rc = main(["train", "--model", "mobilenetv2-0.35", "--data", str(tiny_idx_dir), "--out", str(out),
               "--train-epochs", "1", "--train-batch-size", "64", *COMMON])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("test_accuracy", "params", "macs", "latency_ms", "predicted_latency_ms"):
        assert key in m, key
    assert m["model"] == "mobilenetv2-0.35" and m["arch"] == ["k3_e6"] * 16
    assert m["predicted_latency_ms"] > 0 and m["params"] == count_params(
        build_named("mobilenetv2-0.35", input_shape=(1, 16, 16), num_classes=4))


def test_baselines_command_trains_the_family_and_resumes(tmp_path, tiny_idx_dir, monkeypatch, capsys):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "base"
    cfg = tmp_path / "train.yaml"
    cfg.write_text("max_steps: 3\n")
    argv = ["baselines", "--models", "mobilenetv2-0.35,mobilenetv2-0.5", "--data", str(tiny_idx_dir),
            "--out", str(out), "--train-epochs", "2", "--train-batch-size", "32", "--config", str(cfg),
            "--no-tensorboard", *COMMON]
    assert main(argv) == 0
    summary = json.loads((out / "baselines.json").read_text())
    assert [r["model"] for r in summary["models"]] == ["mobilenetv2-0.35", "mobilenetv2-0.5"]
    assert summary["models"][0]["params"] < summary["models"][1]["params"]
    for name in ("mobilenetv2-0.35", "mobilenetv2-0.5"):
        rows = json.loads((out / name / "curves.json").read_text())
        assert [r["epoch"] for r in rows] == [1, 2]
    assert (out / "report.md").exists() and (out / "pareto.png").stat().st_size > 1000
    # a second run skips both models; other options are refused
    mtime = (out / "mobilenetv2-0.5" / "model.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.count("done, reusing") == 2
    assert (out / "mobilenetv2-0.5" / "model.pt").stat().st_mtime_ns == mtime
    assert main([*argv[:-len(COMMON)], "--train-lr", "0.01", *COMMON]) == 2
    assert main(["baselines", "--models", "nope", "--out", str(out)]) == 2

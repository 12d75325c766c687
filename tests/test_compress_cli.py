"""`directnas compress` end to end on a tiny trained net, and int8 through onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from directnas.cli import main
from directnas.compress.codec import decode_state
from directnas.compress.finetune import accuracy, eval_batches
from directnas.compress.model_io import load_model
from directnas.data import load_dataset

torch.set_num_threads(1)
KEYS = ("accuracy_before", "accuracy_after", "size_bytes_before", "size_bytes_after",
        "compression_ratio", "latency_ms_before", "latency_ms_after")
FAST = ["--threads", "1", "--repeats", "5", "--quick"]


@pytest.fixture(scope="module")
def trained(tiny_idx_dir, tmp_path_factory) -> dict[str, Path]:
    runs = {}
    for name in ("lenet-300-100", "lenet-5"):
        out = tmp_path_factory.mktemp(name)
        rc = main(["train", "--model", name, "--data", str(tiny_idx_dir), "--out", str(out),
                   "--train-epochs", "2", "--train-batch-size", "64", "--threads", "1",
                   "--repeats", "3", "--warmup", "1"])
        assert rc == 0
        runs[name] = out
    return runs


def test_compress_prune_share_huffman_end_to_end(trained, tiny_idx_dir, tmp_path, capsys):
    out = tmp_path / "c"
    rc = main(["compress", "--model", str(trained["lenet-300-100"]), "--method", "prune,share,huffman",
               "--data", str(tiny_idx_dir), "--out", str(out), "--sparsity", "0.8", *FAST])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    for k in KEYS:
        assert k in m
    assert m["methods"] == ["prune", "share", "huffman"] and m["huffman"]
    assert m["size_bytes_after"] == (out / "model.dnz").stat().st_size
    assert m["compression_ratio"] == pytest.approx(m["size_bytes_before"] / m["size_bytes_after"])
    assert m["compression_ratio"] > 10
    assert m["accuracy_after"] > 0.5 and m["latency_ms_after"] > 0
    rows = json.loads((out / "layers.json").read_text())
    assert [r["layer"] for r in rows] == ["1", "3", "5"]
    assert all(r["unique_values"] <= 33 and "huffman" in r["encoding"] for r in rows)
    printed = capsys.readouterr().out
    assert "layer" in printed and "compression" not in printed.splitlines()[0] and "x)" in printed
    # the saved model reloads, equals the encoded file and scores what metrics.json says
    net, ck = load_model(out)
    assert ck["compression"]["methods"] == ["prune", "share", "huffman"]
    dec = decode_state((out / "model.dnz").read_bytes())
    assert all(torch.equal(dec[k], v) for k, v in net.state_dict().items())
    data = load_dataset(tiny_idx_dir)
    assert accuracy(net, eval_batches(data)) == pytest.approx(m["accuracy_after"])
    assert (out / "sensitivity.png").exists()


def test_compress_lowrank_model_reloads(trained, tiny_idx_dir, tmp_path):
    out = tmp_path / "lr"
    rc = main(["compress", "--model", str(trained["lenet-5"] / "model.pt"), "--method",
               "lowrank,fixed-point", "--data", str(tiny_idx_dir), "--out", str(out), *FAST])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    net, _ = load_model(out)  # rebuilt with the 1x1 convs and the feature-map rounding
    data = load_dataset(tiny_idx_dir)
    assert accuracy(net, eval_batches(data)) == pytest.approx(m["accuracy_after"])
    assert set(m["methods_report"]["fixed_point"]["test_accuracy_by_bits"]) >= {"16", "8", "6", "4"}


def test_int8_onnx_runs_and_agrees(trained, tiny_idx_dir, tmp_path):
    out = tmp_path / "q"
    rc = main(["compress", "--model", str(trained["lenet-5"]), "--method", "int8",
               "--data", str(tiny_idx_dir), "--out", str(out), *FAST])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    d = m["methods_report"]["int8"]
    assert d["int8_agreement_with_float"] >= 0.9
    assert d["float_onnx_max_abs_error_vs_torch"] < 1e-3
    assert m["latency_backend"] == "onnxruntime-cpu"
    assert m["size_bytes_after"] == (out / "model_int8.onnx").stat().st_size
    assert m["size_bytes_after"] < d["float_onnx_bytes"] / 3
    assert abs(m["accuracy_after"] - m["accuracy_before"]) < 0.05


@pytest.mark.parametrize("argv, word", [
    (["--method", "prune,zip"], "unknown method"),
    (["--method", "int8,prune"], "last"),
    (["--method", "prune", "--sparsity", "1.5"], "--sparsity"),
    (["--method", "prune", "--finetune-wd", "-1"], "--finetune-wd"),
])
def test_bad_options_are_one_line_errors(trained, tiny_idx_dir, tmp_path, capsys, argv, word):
    rc = main(["compress", "--model", str(trained["lenet-5"]), "--data", str(tiny_idx_dir),
               "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and word in err and err.count("\n") == 1


def test_finetune_wd_reaches_the_retraining_config():
    from directnas.cli import build_parser
    from directnas.commands.compress import config_from
    base = ["compress", "--model", "m", "--method", "prune", "--out", "o"]
    assert config_from(build_parser().parse_args(base)).finetune.weight_decay == 5e-5
    args = build_parser().parse_args([*base, "--finetune-wd", "5e-4"])
    assert config_from(args).finetune.weight_decay == 5e-4


def test_missing_model_is_a_user_error(tmp_path, capsys):
    rc = main(["compress", "--model", str(tmp_path / "nope"), "--method", "prune",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "not found" in capsys.readouterr().err

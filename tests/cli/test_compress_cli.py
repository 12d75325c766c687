"""`directnas compress` end to end on a tiny trained net, and int8 artifacts (pte, onnx)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from directnas.cli.main import main
from directnas.compression.codec import decode_state
from directnas.compression.finetune import accuracy, eval_batches
from directnas.models.model_file import load_model
from directnas.data.readers import load_dataset

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
    assert ck.compression["methods"] == ["prune", "share", "huffman"]
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


def test_int8_writes_pte_onnx_openvino_artifacts_and_records(trained, tiny_idx_dir, tmp_path,
                                                            capsys):
    import onnx

    from directnas.deploy.export import artifact_logits
    out = tmp_path / "q"
    rc = main(["compress", "--model", str(trained["lenet-5"]), "--method", "int8",
               "--data", str(tiny_idx_dir), "--out", str(out), *FAST])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "int8 pte (executorch-xnnpack" in printed and "int8 onnx (onnxruntime-cpu" in printed
    assert "int8 openvino (openvino-cpu" in printed
    m = json.loads((out / "metrics.json").read_text())
    e = json.loads((out / "export.json").read_text())
    assert e["formats"] == ["pte", "onnx", "openvino"]
    arts = e["artifacts"]
    assert set(arts) == {"pte", "pte-int8", "onnx", "onnx-int8", "openvino", "openvino-int8"}
    for fmt, ext in (("pte", "pte"), ("onnx", "onnx"), ("openvino", "xml")):
        f, q = arts[fmt], arts[f"{fmt}-int8"]
        assert Path(f["path"]).name == f"model_fp32.{ext}" and Path(q["path"]).name == f"model_int8.{ext}"
        assert f["max_abs_diff"] < 1e-3 and f["top1_agreement"] == 1.0  # fp32: the torch net
        assert q["top1_agreement_with_fp32"] >= 0.9 and abs(q["accuracy_drop"]) < 0.05
        assert q["size_bytes"] < f["size_bytes"] / 2.5  # int8 weights
        for r in (f, q):
            assert r["latency_ms"] > 0 and r["noise_floor"] >= 0 and r["runtime_version"]
            p = Path(r["path"])
            assert r["test_images"] == 300 and r["size_bytes"] == p.stat().st_size + (
                p.with_suffix(".bin").stat().st_size if fmt == "openvino" else 0)
        assert q["speedup"] == pytest.approx(f["latency_ms"] / q["latency_ms"])
    assert arts["pte-int8"]["runtime_version"].startswith("executorch")
    assert arts["onnx-int8"]["onnx_layout"] in ("qdq", "qoperator")
    ops = onnx.load(str(out / "model_int8.onnx")).graph.node
    kinds = {n.op_type for n in ops}
    assert "QuantizeLinear" in kinds and ({"QLinearConv", "DequantizeLinear"} & kinds)
    assert not list(out.glob(".model_int8_*"))  # the slower layout is not left behind
    import openvino as ov
    ov_ops = {op.get_type_name() for op in ov.Core().read_model(str(out / "model_int8.xml")).get_ops()}
    assert "FakeQuantize" in ov_ops  # NNCF's int8 quantize / dequantize points
    # the headline: the first format's int8 artifact against its fp32 counterpart
    assert m["latency_backend"] == "executorch-xnnpack" and m["compressed_file"] == "model_int8.pte"
    assert m["size_bytes_after"] == (out / "model_int8.pte").stat().st_size
    assert m["accuracy_after"] == arts["pte-int8"]["accuracy"]
    assert m["latency_ms_before"] == arts["pte"]["latency_ms"]
    assert m["speedup"] == pytest.approx(arts["pte-int8"]["speedup"])
    assert set(m["int8"]) == set(arts) and "noise_floor" in m
    assert abs(m["accuracy_after"] - m["accuracy_before"]) < 0.05
    # the artifacts run standalone on pixels in [0, 1] and score what export.json says
    data = load_dataset(tiny_idx_dir)
    x = data.test.images.float() / 255
    y = data.test.labels.numpy()
    for key in ("pte-int8", "onnx-int8", "openvino-int8"):
        r = arts[key]
        acc = float((artifact_logits(r["format"], Path(r["path"]), x).argmax(1) == y).mean())
        assert acc == pytest.approx(r["accuracy"])
    assert "model_int8.pte" in (out / "README.md").read_text()


def test_int8_formats_option(trained, tiny_idx_dir, tmp_path, monkeypatch, capsys):
    import directnas.compression.int8 as int8
    out = tmp_path / "q1"
    monkeypatch.setattr(int8, "installed", lambda fmt: fmt == "onnx")  # no executorch here
    rc = main(["compress", "--model", str(trained["lenet-5"]), "--method", "int8",
               "--int8-formats", "pte,onnx", "--data", str(tiny_idx_dir), "--out", str(out),
               *FAST])
    assert rc == 0
    assert "warning: int8 pte skipped: executorch is not installed" in capsys.readouterr().out
    assert json.loads((out / "export.json").read_text())["formats"] == ["onnx"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["compressed_file"] == "model_int8.onnx" and m["latency_backend"] == "onnxruntime-cpu"
    assert not (out / "model_int8.pte").exists()


def test_int8_batch_exports_and_times_fixed_batch_artifacts(trained, tiny_idx_dir, tmp_path):
    """--int8-batch 7: the fixed-shape artifacts take 7 images a call; all 300 test images are
    still scored (the last call padded) and the figures say batch 7."""
    from directnas.deploy.export import artifact_logits
    out = tmp_path / "qb"
    rc = main(["compress", "--model", str(trained["lenet-5"]), "--method", "int8",
               "--int8-formats", "pte,openvino", "--int8-batch", "7", "--data", str(tiny_idx_dir),
               "--out", str(out), *FAST])
    assert rc == 0
    e = json.loads((out / "export.json").read_text())
    assert e["batch_size"] == 7
    for name, r in e["artifacts"].items():
        assert r["latency_batch_size"] == 7 and r["test_images"] == 300, name
        assert r["top1_agreement"] >= (1.0 if "int8" not in name else 0.9), name
    dims = e["artifacts"]["pte"]["input"].split("(N, ")[1].split(")")[0]
    c, h, w = (int(v) for v in dims.split(", "))
    images = torch.rand(10, c, h, w)
    one = artifact_logits("pte", out / "model_fp32.pte", images, 1, 7)
    first = artifact_logits("pte", out / "model_fp32.pte", images[:7], 1, 7)
    assert one.shape[0] == 10 and np.allclose(one[:7], first, atol=1e-5)
    assert "N = 7" in (out / "README.md").read_text()


@pytest.mark.parametrize("argv, word", [
    (["--method", "int8", "--int8-batch", "0"], "--int8-batch"),
    (["--method", "prune,zip"], "unknown method"),
    (["--method", "int8,prune"], "last"),
    (["--method", "prune", "--sparsity", "1.5"], "--sparsity"),
    (["--method", "prune", "--finetune-wd", "-1"], "--finetune-wd"),
    (["--method", "int8", "--int8-formats", "pte,tflite"], "int8 format"),
])
def test_bad_options_are_one_line_errors(trained, tiny_idx_dir, tmp_path, capsys, argv, word):
    rc = main(["compress", "--model", str(trained["lenet-5"]), "--data", str(tiny_idx_dir),
               "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and word in err and err.count("\n") == 1


def test_finetune_wd_reaches_the_retraining_config():
    from directnas.cli.compress_flags import compress_options
    from directnas.cli.main import build_parser
    from directnas.compression.options import compress_config
    base = ["compress", "--model", "m", "--method", "prune", "--out", "o"]
    assert compress_config(**compress_options(build_parser().parse_args(base))).finetune.weight_decay == 5e-5
    args = build_parser().parse_args([*base, "--finetune-wd", "5e-4"])
    assert compress_config(**compress_options(args)).finetune.weight_decay == 5e-4


def test_missing_model_is_a_user_error(tmp_path, capsys):
    rc = main(["compress", "--model", str(tmp_path / "nope"), "--method", "prune",
               "--out", str(tmp_path / "o")])
    assert rc == 2 and "not found" in capsys.readouterr().err

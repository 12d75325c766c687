"""`directnas run` end to end on the tiny space and generated data: stages, resume/skip, report,
TensorBoard, several targets."""

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from directnas.cli.main import main
from directnas.cli.common import parse_target
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import fastest_ms
from directnas.space.space import load_space
from directnas.utils.fileio import torch_load

# eager torch (the run's default is the best deployment runtime installed) and no reference
# nets (tests/pipeline/test_references.py): the stages themselves are tested here
COMMON = ["--threads", "1", "--repeats", "5", "--warmup", "1", "--backend", "torch-cpu",
          "--no-references"]


def _argv(space, data, out, target, *extra):
    return ["run", "--space", str(space), "--data", str(data), "--out", str(out),
            "--target-latency", target, "--warmup-epochs", "1", "--epochs", "1", "--batch-size", "64",
            "--train-batch-size", "64", "--seed", "0", *COMMON, *extra]


def test_run_pipeline_resumes_and_skips(tmp_path, tiny_idx_dir, tiny_space_yaml, monkeypatch, capsys):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DIRECTNAS_NO_PROGRESS", raising=False)  # the bars are checked
    out = tmp_path / "run"
    argv = _argv(tiny_space_yaml, tiny_idx_dir, out, "5", "--train-epochs", "2")
    assert main(argv) == 0
    cap = capsys.readouterr()
    printed = cap.out
    assert "profile ops" in cap.err  # the profiling shows a bar too, not only the loops
    for path in ("latency.json", "search/arch.json", "search/search.json", "train/metrics.json",
                 "train/model.pt", "report.md", "report.json", "pareto.png"):
        assert (out / path).exists(), path
    assert f"architecture: {(out / 'search' / 'arch.json').resolve()}" in printed
    assert "report.md" in printed and "pareto.png" in printed
    m = json.loads((out / "train" / "metrics.json").read_text())
    assert m["test_accuracy"] > 0.5 and m["latency_ms"] > 0 and m["predicted_latency_ms"] > 0
    # the folder it trained on, as compress and export read it again without --data
    tc = json.loads((out / "train" / "train_config.json").read_text())
    assert tc["data"] == str(Path(tiny_idx_dir).resolve())
    report = json.loads((out / "report.json").read_text())
    assert report["runs"][0]["name"] == "searched@5ms" and report["runs"][0]["target_latency_ms"] == 5
    md = (out / "report.md").read_text()
    flip = report["runs"][0]["test_accuracy_flip_tta"]
    assert flip == m["test_accuracy_flip_tta"] and f"{100 * flip:.2f} %" in md
    pngs = list(out.glob("*.png"))
    assert len(pngs) == 4  # architecture, probabilities, curves, accuracy-latency plane
    for p in pngs:
        assert p.stat().st_size > 2000 and f"]({p.name})" in md
    # curves: JSON for the plots and TensorBoard event files for both loops
    assert [r["epoch"] for r in json.loads((out / "search" / "curves.json").read_text())] == [1, 2]
    assert [r["epoch"] for r in json.loads((out / "train" / "curves.json").read_text())] == [1, 2]
    tags = {}
    for loop in ("search", "train"):
        ea = EventAccumulator(str(out / loop / "tb"))
        ea.Reload()
        tags[loop] = set(ea.Tags()["scalars"])
    assert {"search/train_loss", "search/expected_latency_ms", "probs/layer00/k3_e3"} <= tags["search"]
    assert {"train/train_loss", "train/test_accuracy"} <= tags["train"]

    # the same command again: every stage is skipped, nothing is retrained
    stamps = {p: (out / p).stat().st_mtime_ns for p in ("search/arch.json", "train/model.pt")}
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "latency table: reusing" in printed and printed.count("done, reusing") == 3
    assert "artifact: " in printed and (out / "export" / "export.json").exists()
    md = (out / "report.md").read_text()
    exp = json.loads((out / "export" / "export.json").read_text())
    assert "## Shipped artifact" in md and f"at **{exp['latency_ms'] / 5:.2f} T** of its target" in md
    ref = LatencyTable.load(out / "latency.json").meta["reference_ms"]  # target in ms: not re-anchored
    assert f"at **{exp['latency_ms'] / 5 * ref / exp['reference_ms']:.2f} T**" in md
    assert all((out / p).stat().st_mtime_ns == t for p, t in stamps.items())

    # an interrupted training (its folder gone) is redone; search is kept; the run re-run from
    # that stage boundary trains bitwise the same net (the stage seeds at its entry)
    trained = torch_load(out / "train" / "model.pt")["state_dict"]
    shutil.rmtree(out / "train")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "search: done, reusing" in printed and "train: done" not in printed
    assert (out / "train" / "metrics.json").exists()
    assert (out / "search" / "arch.json").stat().st_mtime_ns == stamps["search/arch.json"]
    again = torch_load(out / "train" / "model.pt")["state_dict"]
    assert again.keys() == trained.keys()
    assert all(torch.equal(again[k], trained[k]) for k in trained)

    # other options in the same folder are refused instead of mixing two configurations
    assert main(_argv(tiny_space_yaml, tiny_idx_dir, out, "5", "--train-epochs", "3")) == 2
    assert "other options" in capsys.readouterr().err


def test_run_several_targets(tmp_path, tiny_idx_dir, tiny_space_yaml, monkeypatch, capsys):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("max_steps: 4\n")
    out = tmp_path / "multi"
    argv = _argv(tiny_space_yaml, tiny_idx_dir, out, "1.5x,20", "--train-epochs", "1",
                 "--config", str(cfg), "--train-config", str(cfg), "--no-tensorboard")
    assert main(argv) == 0
    # a relative target is 1.5 times the fastest net on this machine's table, re-anchored on
    # nets timed near it before the search (the profiled table is kept beside it)
    profiled = LatencyTable.load(out / "latency.json")
    table = LatencyTable.load(out / "t1.5x" / "latency_near.json")
    near = table.meta["near_target"]
    assert near["nets"] and near["scale"] > 0 and "near_target" not in profiled.meta
    resolved = near["resolved"]
    assert resolved["profiled_target_ms"] == pytest.approx(
        1.5 * fastest_ms(load_space(str(tiny_space_yaml)), profiled), abs=1e-4)
    printed = capsys.readouterr().out
    assert "latency near the target" in printed
    # the target is 1.5 times the fastest net as timed beside the near-target nets
    assert resolved["target_ms"] == pytest.approx(1.5 * resolved["fastest_measured_ms"], abs=1e-4)
    assert f"T = {resolved['target_ms']:.4f} ms" in printed
    # the targets share one warm-up: the first writes it, the second starts from it
    assert (out / "warmup_checkpoint.pt").exists()
    searches = [json.loads((out / t / "search" / "search.json").read_text()) for t in ("t1.5x", "t20")]
    assert searches[0]["warmup_reused_s"] is None and searches[1]["warmup_reused_s"] > 0
    # alpha reads cross-entropy alone (loss none): the second target reuses the whole search
    assert (out / "search_shared.pt").exists() and searches[0]["search_reused_s"] is None
    assert searches[1]["search_reused_s"] >= searches[1]["warmup_reused_s"]
    assert searches[1]["steps"] == searches[0]["steps"]
    # the search looks for that T in ms
    rel = json.loads((out / "t1.5x" / "search" / "arch.json").read_text())["target_latency_ms"]
    assert rel == pytest.approx(resolved["target_ms"], abs=1e-4)
    # at export the artifact is timed again beside those nets and judged at today's speed
    check = json.loads((out / "t1.5x" / "export" / "target_check.json").read_text())
    assert {r["name"] for r in check["anchors"]} == {f"near{i}" for i in range(len(near["nets"]))} | {"fastest"}
    assert check["target_ms"] == pytest.approx(rel) and check["artifact_ms"] > 0
    assert check["ratio"] == pytest.approx(check["artifact_ms"] / (rel * check["speed_now_over_then"]))
    assert check["relative"]["spec"] == "1.5x"
    assert "### Target held?" in (out / "t1.5x" / "report.md").read_text()
    assert "target check: Timed again" in printed and "target held:" in printed
    for t in ("t1.5x", "t20"):
        assert (out / t / "search" / "arch.json").exists() and (out / t / "report.md").exists()
        assert json.loads((out / t / "train" / "metrics.json").read_text())["latency_ms"] > 0
        assert not (out / t / "search" / "tb").exists()
    report = json.loads((out / "report.json").read_text())
    assert sorted(r["name"] for r in report["runs"]) == sorted([f"searched@{rel:g}ms", "searched@20ms"])
    assert len(list(out.glob("*.png"))) == 1 + 2 * 3
    assert main(["run", "--target-latency", "1,-2", "--out", str(out)]) == 2  # a usage error
    assert "is not a target latency" in capsys.readouterr().err
    # a later call on the same folder with one more target searches no further: the new target
    # derives its net from the shared search
    argv2 = _argv(tiny_space_yaml, tiny_idx_dir, out, "1.5x,20,25", "--train-epochs", "1",
                  "--config", str(cfg), "--train-config", str(cfg), "--no-tensorboard",
                  "--no-references")
    assert main(argv2) == 0
    later = json.loads((out / "t25" / "search" / "search.json").read_text())
    assert later["search_reused_s"] > 0 and later["steps"] == searches[0]["steps"]
    assert json.loads((out / "t25" / "search" / "arch.json").read_text())["target_latency_ms"] == 25


def test_parse_target():
    assert parse_target("1.5") == 1.5 and parse_target("1.60X") == "1.6x" and parse_target(" 2x") == "2x"
    for bad in ("fast", "0", "-1", "0.5x", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_target(bad)


def test_run_compress_stage_compresses_exports_and_reports(tmp_path, tiny_idx_dir, tiny_space_yaml,
                                                           monkeypatch, capsys):
    """`run --compress-target-ratio R` ends with directnas compress on the trained net, whose
    compressed net is exported for the runtime searched for and shown in report.md."""
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("max_steps: 4\n")
    out = tmp_path / "rc"
    argv = _argv(tiny_space_yaml, tiny_idx_dir, out, "20", "--train-epochs", "1", "--config",
                 str(cfg), "--train-config", str(cfg), "--no-tensorboard",
                 "--compress-target-ratio", "4",
                 "--compress-args", "--quick --repeats 3 --valid-images 300")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "compress" / "metrics.json").read_text())
    assert m["recipe"]["target_ratio"] == 4 and m["compression_ratio"] > 1
    assert (out / "compress" / "model.dnz").stat().st_size == m["size_bytes_after"]
    (art,) = m["export"].values()
    assert art["format"] == "torchscript" and art["latency_ms"] > 0 and art["top1_agreement"] > 0.99
    assert Path(art["path"]).is_file() and Path(art["path"]).parent == out / "compress" / "export"
    assert "compressed: " in printed and f"({m['compression_ratio']:.1f}x" in printed
    md = (out / "report.md").read_text()
    assert md.count("## Compressed") == 1 and f"{m['compression_ratio']:.1f}x" in md
    # the same command again reuses the stage and keeps one section
    stamp = (out / "compress" / "model.dnz").stat().st_mtime_ns
    assert main(argv) == 0
    assert "compress: done, reusing" in capsys.readouterr().out
    assert (out / "compress" / "model.dnz").stat().st_mtime_ns == stamp
    assert (out / "report.md").read_text().count("## Compressed") == 1

"""Report pictures and summaries from synthetic run folders (no training: fast)."""

import json

import pytest

from directnas.cli.main import main
from directnas.errors import UserError
from directnas.utils.fileio import write_json
from directnas.report.writer import (draw_arch, find_runs, latency_ratio_at_equal_accuracy, pareto_front,
                              plot_curves, plot_probs, write_report)
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace

PNG = b"\x89PNG\r\n\x1a\n"


def _png_ok(path):
    data = path.read_bytes()
    return data[:8] == PNG and len(data) > 2000


def _arch(tiny_space_dict, target=3.0):
    space = SearchSpace.from_dict(tiny_space_dict)
    return Arch(space, ["k3_e3", "zero", "k5_e3", "k3_e6"],
                {"target_latency_ms": target, "predicted_latency_ms": 0.9})


def _search(arch):
    names = [list(l.candidates) for l in arch.space.layers]
    hist = [{"epoch": e, "step": 10 * e, "alpha_steps": 5 * e,
             "probs": [[1 / len(n)] * len(n) for n in names]} for e in range(4)]
    rows = [{"epoch": e, "warmup": float(e == 1), "train_loss": 1.5 - 0.2 * e, "alpha_loss": 1.0,
             "epoch_s": 1.0, "expected_latency_ms": 1.2 - 0.1 * e, "derived_latency_ms": 1.1}
            for e in (1, 2, 3)]
    return {"history": hist, "layer_names": names, "arch": arch.ops, "epochs": rows,
            "search_wall_s": 12.0}


def _pipeline_run(folder, arch, acc, lat):
    arch.save(folder / "search" / "arch.json")
    write_json(folder / "search" / "search.json", _search(arch))
    write_json(folder / "train" / "metrics.json", {
        "model": "searched:search", "test_accuracy": acc, "latency_ms": lat, "params": 5000,
        "macs": 100000, "predicted_latency_ms": 0.9, "latency_backend": "torch-cpu"})
    write_json(folder / "train" / "curves.json", [{"epoch": 1, "train_loss": 1.0},
                                                  {"epoch": 2, "train_loss": 0.5}])


def _baseline(folder, name, acc, lat):
    write_json(folder / name / "metrics.json", {"model": name, "test_accuracy": acc, "latency_ms": lat,
                                                "params": 10000, "macs": 500000,
                                                "latency_backend": "torch-cpu"})


def test_pareto_front_and_latency_ratio():
    base = [(4.0, 0.90), (2.0, 0.85), (3.0, 0.84), (8.0, 0.93)]
    assert pareto_front(base) == [(2.0, 0.85), (4.0, 0.90), (8.0, 0.93)]
    r = latency_ratio_at_equal_accuracy(0.875, 1.5, base)  # halfway between 2 ms and 4 ms
    assert r["baseline_latency_ms"] == pytest.approx(3.0) and r["ratio"] == pytest.approx(2.0)
    assert r["method"] == "interpolated"
    low = latency_ratio_at_equal_accuracy(0.80, 1.0, base)
    assert low["ratio"] == pytest.approx(2.0) and low["method"].startswith("fastest")
    assert latency_ratio_at_equal_accuracy(0.95, 1.0, base) is None


def test_pictures_are_pngs(tmp_path, tiny_space_dict):
    arch = _arch(tiny_space_dict)
    assert _png_ok(draw_arch(arch, tmp_path / "a.png"))
    assert _png_ok(plot_probs(_search(arch), tmp_path / "p.png"))
    assert _png_ok(plot_curves(_search(arch)["epochs"], [{"epoch": 1, "train_loss": 1.0}],
                               tmp_path / "c.png", target_ms=1.0, test_accuracy=0.9))
    # loss none: the kept net marked at the last epoch, the panel says alpha saw no latency term
    kept = plot_curves(_search(arch)["epochs"], [{"epoch": 1, "train_loss": 1.0}],
                       tmp_path / "k.png", target_ms=1.0, kept_ms=0.97, latency_free=True)
    assert _png_ok(kept) and kept.read_bytes() != (tmp_path / "c.png").read_bytes()
    with pytest.raises(UserError):
        plot_probs({"history": []}, tmp_path / "x.png")
    with pytest.raises(UserError):
        plot_curves([], [], tmp_path / "y.png")


def test_write_report_finds_runs_and_compares(tmp_path, tiny_space_dict):
    runs, base = tmp_path / "runs", tmp_path / "base"
    _pipeline_run(runs / "t1", _arch(tiny_space_dict, 1.0), acc=0.90, lat=1.0)
    _pipeline_run(runs / "t2", _arch(tiny_space_dict, 2.0), acc=0.95, lat=2.0)
    _baseline(base, "mobilenetv2-0.35", 0.85, 2.0)
    _baseline(base, "mobilenetv2-1.0", 0.93, 6.0)
    (base / "mobilenetv2-1.4").mkdir()  # an unfinished model is ignored
    found = find_runs([runs, base])
    assert [r.name for r in found] == ["searched@1ms", "searched@2ms", "mobilenetv2-0.35",
                                       "mobilenetv2-1.0"]
    out = tmp_path / "report"
    summary = write_report([runs, base], out, title="t")
    comp = {c["searched"]: c for c in summary["comparisons"]}
    # 0.90 lies 5/8 of the way from (2 ms, 0.85) to (6 ms, 0.93): 4.5 ms vs 1.0 ms
    assert comp["searched@1ms"]["ratio"] == pytest.approx(4.5)
    assert comp["searched@2ms"]["ratio"] is None  # no baseline reaches 0.95
    # ... and the most accurate baseline (1.0 at 0.93, 6 ms) is 3x slower than it: a lower bound
    assert comp["searched@2ms"]["ratio_lower_bound"] == pytest.approx(3.0)
    assert "mobilenetv2-1.0" in comp["searched@2ms"]["method"]
    assert comp["searched@1ms"]["dominated_by"] == []
    md = (out / "report.md").read_text()
    assert "> 3.00x" in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "pareto.png" in pngs and len(pngs) == 1 + 2 * 3  # arch, probs, curves per searched run
    for name in pngs:
        assert f"]({name})" in md and _png_ok(out / name)
    data = json.loads((out / "report.json").read_text())
    assert data["runs"][0]["arch"] == ["k3_e3", "zero", "k5_e3", "k3_e6"]
    assert 0 < data["runs"][0]["test_accuracy"] < 1  # fractions in JSON


def test_report_command(tmp_path, tiny_space_dict, capsys):
    _pipeline_run(tmp_path / "run", _arch(tiny_space_dict, 1.0), acc=0.9, lat=1.0)
    _baseline(tmp_path / "base", "mobilenetv2-0.5", 0.92, 3.0)
    rc = main(["report", str(tmp_path / "run"), str(tmp_path / "base"), "--out", str(tmp_path / "r")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "report.md" in out and "lower latency at equal accuracy" in out
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r2")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r2")]) == 2


def _save_model(folder, net, *, arch=None, model=None, shape=(1, 16, 16)):
    from directnas.utils.fileio import torch_save
    torch_save(folder / "model.pt", {"kind": "directnas-model", "name": model or "searched",
                                     "arch": arch.to_dict() if arch else None, "model": model,
                                     "state_dict": net.state_dict(), "input_shape": shape,
                                     "num_classes": 4, "mean": 0.0, "std": 1.0})


def test_report_remeasure_times_all_nets_side_by_side(tmp_path, tiny_space_dict, capsys):
    from directnas.models.registry import build_named
    arch = _arch(tiny_space_dict, 1.0)
    _pipeline_run(tmp_path / "run", arch, acc=0.9, lat=999.0)
    _save_model(tmp_path / "run" / "train", arch.build(), arch=arch)
    _baseline(tmp_path / "base", "lenet-5", 0.92, 777.0)
    _save_model(tmp_path / "base" / "lenet-5",
                build_named("lenet-5", input_shape=(1, 16, 16), num_classes=4), model="lenet-5")
    out = tmp_path / "r"
    rc = main(["report", str(tmp_path / "run"), str(tmp_path / "base"), "--out", str(out),
               "--remeasure", "--rounds", "2", "--repeats", "3", "--warmup", "1", "--threads", "1"])
    assert rc == 0
    assert "re-timed 2 nets side by side" in capsys.readouterr().out
    runs = {r["name"]: r for r in json.loads((out / "report.json").read_text())["runs"]}
    for name, old in (("searched@1ms", 999.0), ("lenet-5", 777.0)):
        r = runs[name]
        assert r["latency_ms_at_training"] == old
        assert 0 < r["latency_ms"] < 100  # a real timing of a tiny net, not the stored figure
        assert r["latency_side_by_side"] == {"rounds": 2, "warmup": 1, "repeats": 3, "nets": 2,
                                             "stat": "p10"}
        assert r["latency_threads"] == 1
        # the space's reference net was timed in every round: its round spread is the noise floor
        assert r["latency_reference"].startswith("the space's reference net")
        assert 0 < r["latency_reference_ms"] < 100 and r["latency_noise_floor"] >= 0
    md = (out / "report.md").read_text()
    assert "side by side in one process" in md and "noise floor" in md
    # a trained run whose model.pt is gone: one clear error, no report
    (tmp_path / "base" / "lenet-5" / "model.pt").unlink()
    assert main(["report", str(tmp_path / "run"), str(tmp_path / "base"), "--out",
                 str(tmp_path / "r3"), "--remeasure", "--repeats", "2", "--warmup", "1"]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "r3" / "report.md").exists()

"""`directnas run` trains reference nets beside the searched one (random nets of its latency window,
MobileNets from the same ops), times their artifacts side by side with its artifact, and reports
the comparison; `--no-references` skips them; a re-run reuses them.  And the run's default
backend is the best deployment runtime installed."""

import json

import pytest

from directnas import runtimes
from directnas.cli.main import main
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.table import LatencyTable
from directnas.report.references import best_reference, versus
from directnas.space.arch import Arch
from directnas.space.space import load_space

from helpers import fake_table

TARGET = 0.55  # ms on the generated table: about half of the tiny space's nets are in [0.9 T, T]


def _argv(space, data, table, out, *extra):
    return ["run", "--space", str(space), "--data", str(data), "--out", str(out),
            "--latency-table", str(table), "--target-latency", str(TARGET),
            "--warmup-epochs", "1", "--epochs", "1", "--batch-size", "64",
            "--train-batch-size", "64", "--train-epochs", "1", "--seed", "0", "--threads", "1",
            "--repeats", "5", "--warmup", "1", "--rounds", "2", "--no-tensorboard", *extra]


@pytest.fixture
def setup(tmp_path, tiny_space_yaml, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    table = tmp_path / "table.json"
    fake_table(load_space(str(tiny_space_yaml))).save(table)
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("max_steps: 3\n")
    return table, cfg


def test_run_trains_times_and_reports_references(tmp_path, tiny_idx_dir, tiny_space_yaml, setup,
                                                 capsys):
    table, cfg = setup
    out = tmp_path / "run"
    argv = _argv(tiny_space_yaml, tiny_idx_dir, table, out, "--config", str(cfg),
                 "--train-config", str(cfg), "--references", "4",
                 "--reference-models", "mobilenetv2-0.35,mobilenetv3-small",
                 "--references-epochs", "2")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # references trained for other epochs than the searched net: it is trained again at theirs
    names = ["retrained-e2", "random-1", "random-2", "random-3", "random-4", "mobilenetv2-0.35",
             "mobilenetv3-small"]
    for n in names:
        for f in ("stage.json", "model.pt", "metrics.json", "export/export.json"):
            assert (out / "references" / n / f).exists(), (n, f)
    refs = json.loads((out / "references" / "references.json").read_text())
    assert [r["name"] for r in refs["references"]] == names
    # the random nets: distinct, not the searched net, predicted in [0.9 T, T] on the run's table
    lut, space = LatencyTable.load(out / "latency.json"), load_space(str(tiny_space_yaml))
    searched = Arch.load(out / "search" / "arch.json").ops
    assert refs["references"][0]["arch"] == searched and refs["references"][0]["epochs"] == 2
    assert refs["epochs"] == 2 and all(r["epochs"] == 2 for r in refs["references"])
    ops = [tuple(r["arch"]) for r in refs["references"][1:5]]
    assert len(set(ops)) == 4 and tuple(searched) not in ops
    for o in ops:
        assert 0.9 * TARGET - 1e-9 <= predict_arch_ms(Arch(space, list(o)), lut) <= TARGET + 1e-9
    # every artifact (the searched one too) timed in one session, as the artifact is
    s = refs["session"]
    assert s["format"] == "torchscript" and s["batch_size"] == 1 and s["threads"] == 1
    assert set(s["latencies"]) == {"searched", *names}
    exported = json.loads((out / "export" / "export.json").read_text())
    assert refs["searched"]["artifact"] == exported["path"]
    # report.json lists them with accuracy and latency; report.md and the console the comparison
    report = json.loads((out / "report.json").read_text())
    rows = {r["name"]: r for r in report["runs"]}
    for n in names:
        assert rows[n]["kind"] == "reference" and 0 <= rows[n]["test_accuracy"] <= 1
        assert rows[n]["latency_ms"] == pytest.approx(s["latencies"][n]["latency_ms"])
    searched_row = rows[f"searched@{TARGET:g}ms"]
    assert searched_row["latency_ms"] == pytest.approx(s["latencies"]["searched"]["latency_ms"])
    line = refs["versus"]["line"]
    assert line.startswith("searched vs the best reference at equal or lower latency: ")
    assert "all at 2 epochs, the searched net retrained so (retrained-e2)" in line
    assert refs["versus"]["equal_recipe"]["name"] == "retrained-e2"
    assert refs["versus"]["searched_accuracy"] == refs["references"][0]["test_accuracy"]
    assert report["references"][0]["line"] == line
    # the families of its own references are compared with the net trained at their epochs
    fams = {c["baseline_family"]: c for c in report["comparisons"]}
    assert set(fams) == {"random", "mobilenetv2", "mobilenetv3"}
    assert all(c["searched_as"] == "retrained-e2" for c in fams.values())
    assert line in (out / "report.md").read_text() and f"  {line}" in printed
    assert (out / "pareto.png").stat().st_size > 2000
    assert len(list(out.glob("*.png"))) == 4  # no curves per reference

    # the same command again: every reference and the timing session are reused
    stamps = {n: (out / "references" / n / "model.pt").stat().st_mtime_ns for n in names}
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "references: timing done, reusing" in printed
    assert printed.count("train: done, reusing") == 1 + len(names)
    assert all((out / "references" / n / "model.pt").stat().st_mtime_ns == t
               for n, t in stamps.items())

    # a reference whose folder is gone is trained again, and the session timed again
    import shutil

    shutil.rmtree(out / "references" / "random-2")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "timing 8 artifacts side by side" in printed
    assert (out / "references" / "random-2" / "metrics.json").exists()


def test_no_references_skips_them(tmp_path, tiny_idx_dir, tiny_space_yaml, setup, capsys):
    table, cfg = setup
    out = tmp_path / "run"
    assert main(_argv(tiny_space_yaml, tiny_idx_dir, table, out, "--config", str(cfg),
                      "--train-config", str(cfg), "--no-references")) == 0
    assert not (out / "references").exists()
    report = json.loads((out / "report.json").read_text())
    assert [r["kind"] for r in report["runs"]] == ["searched"] and report["references"] == []
    assert "best reference" not in capsys.readouterr().out


def test_best_reference_at_equal_or_lower_latency():
    s = {"name": "searched", "test_accuracy": 0.90, "latency_ms": 1.0}
    refs = [{"name": "a", "test_accuracy": 0.88, "latency_ms": 0.9},
            {"name": "b", "test_accuracy": 0.89, "latency_ms": 1.02},  # within the noise floor
            {"name": "c", "test_accuracy": 0.95, "latency_ms": 2.0}]  # slower
    v = best_reference(s, refs, noise_floor=0.03)
    assert v["best"]["name"] == "b" and v["points"] == pytest.approx(1.0) and v["beats_all"]
    assert v["line"] == ("searched vs the best reference at equal or lower latency: +1.00 points "
                         "(searched 90.00 % at 1.000 ms; best reference b 89.00 % at 1.020 ms)")
    assert best_reference(s, refs, noise_floor=0.01)["best"]["name"] == "a"
    assert best_reference(s, refs, noise_floor=0.5)["tolerance"] == 0.05  # capped
    none = best_reference(s, refs[2:])
    assert none["points"] is None and "none, every reference is slower" in none["line"]


def test_versus_compares_at_the_references_recipe():
    """References trained 2 epochs, the shipped net 20: the comparison uses the searched net
    retrained 2 epochs, at the shipped artifact's latency, and names the shipped accuracy."""
    shipped = {"name": "searched", "test_accuracy": 0.93, "latency_ms": 1.0, "epochs": 20}
    refs = [{"name": "retrained-e2", "test_accuracy": 0.87, "latency_ms": 1.3, "epochs": 2},
            {"name": "a", "test_accuracy": 0.88, "latency_ms": 0.9, "epochs": 2},
            {"name": "b", "test_accuracy": 0.99, "latency_ms": 2.0, "epochs": 2}]
    v = versus(shipped, refs, noise_floor=0.03)
    assert v["best"]["name"] == "a" and v["points"] == pytest.approx(-1.0) and not v["beats_all"]
    assert v["searched_latency_ms"] == 1.0 and v["references"] == 2
    assert ("; all at 2 epochs, the searched net retrained so (retrained-e2); "
            "the shipped net after 20 epochs: 93.00 % (6.0 points above the retrained net: at 2 "
            "epochs the nets are far from trained") in v["line"]
    assert v["short_recipe_gap_points"] == pytest.approx(6.0)
    # a short recipe that nearly reaches the shipped accuracy is not flagged
    close = versus({**shipped, "test_accuracy": 0.90}, refs, noise_floor=0.03)
    assert close["line"].endswith("the shipped net after 20 epochs: 90.00 %")
    # without a retrained net: the shipped net itself
    assert versus(shipped, refs[1:])["points"] == pytest.approx(5.0)


def test_best_installed_picks_by_availability(monkeypatch):
    from dataclasses import replace

    from directnas.runtimes import base

    def only(*available):
        for name in runtimes.names():
            why = None if name in available else f"{name} is not installed"
            monkeypatch.setitem(base._RUNTIMES, name,
                                replace(base._RUNTIMES[name], unavailable=lambda why=why: why))
        return runtimes.best_installed()

    every = ("executorch-xnnpack", "openvino-cpu", "onnxruntime-cpu", "torch-cpu")
    assert only(*every) == "executorch-xnnpack"
    assert only(*every[1:]) == "openvino-cpu"
    assert only("onnxruntime-cpu", "torch-cpu", "cuda") == "onnxruntime-cpu"
    assert only("torch-cpu", "cuda") == "torch-cpu"
    assert only() == "torch-cpu"  # nothing runs: the default backend
    only(*every)
    # not registered at all (a copy without it: deleting and restoring would reorder the registry)
    monkeypatch.setattr(base, "_RUNTIMES", {k: v for k, v in base._RUNTIMES.items()
                                            if k != "executorch-xnnpack"})
    assert runtimes.best_installed() == "openvino-cpu"


def test_run_defaults_to_the_best_installed_runtime(monkeypatch, capsys):
    from directnas.pipeline.run import default_backend

    said = []
    monkeypatch.setattr(runtimes, "best_installed", lambda: "openvino-cpu")
    assert default_backend(None, None, said.append) == "openvino-cpu"
    assert said == ["backend: openvino-cpu (the best deployment runtime installed; --backend NAME "
                    "picks another)"]
    assert default_backend("torch-cpu", None, said.append) == "torch-cpu"  # named: unchanged
    assert default_backend(None, "table.json", said.append) is None  # the table's own backend
    assert len(said) == 1
    from directnas.cli.main import build_parser

    assert build_parser().parse_args(["run", "--out", "o"]).backend is None


def test_pareto_zooms_on_the_window_when_random_nets_share_it(tmp_path):
    from PIL import Image

    from directnas.report.plots import plot_pareto

    def pt(family, label, ms, acc):
        return {"family": family, "label": label, "latency_ms": ms, "test_accuracy": acc}

    window = [pt("searched", "T=0.2ms", 0.2, 0.9), *(pt("random", f"r{i}", 0.19 + i / 1000, 0.89)
                                                     for i in range(4))]
    alone = Image.open(plot_pareto(window, tmp_path / "a.png")).size
    both = Image.open(plot_pareto([*window, pt("mobilenetv2", "MBv2-0.35", 0.6, 0.8)],
                                  tmp_path / "b.png")).size
    assert both[0] > 1.5 * alone[0]  # a second panel: the zoom on the window


def test_references_share_a_third_of_the_searched_epochs_unless_given():
    from directnas.pipeline.references import MODELS, RANDOM, ReferenceOptions, reference_epochs
    nets = RANDOM + len(MODELS) + 1  # the default set and the retrained searched net
    assert nets == 7
    assert reference_epochs(ReferenceOptions(), 125, nets) == 5  # the sign-language photos' 125
    assert reference_epochs(ReferenceOptions(), 26, nets) == 1  # the demo's 26: 1.24 each
    assert reference_epochs(ReferenceOptions(), 63, nets) == 3  # exactly a third: not 2
    assert reference_epochs(ReferenceOptions(), 1, nets) == 1
    assert reference_epochs(ReferenceOptions(), 125, 2) == 20
    assert reference_epochs(ReferenceOptions(epochs=30), 125, nets) == 30
    # at least REFERENCE_MIN_STEPS (250) weight steps each: 12-step passes (the photos) -> 21
    # epochs; a 468-step pass (the demo) keeps its one epoch; never past the searched net's epochs
    assert reference_epochs(ReferenceOptions(), 125, nets, 12) == 21
    assert reference_epochs(ReferenceOptions(), 26, nets, 468) == 1
    assert reference_epochs(ReferenceOptions(), 10, nets, 12) == 10
    assert reference_epochs(ReferenceOptions(epochs=3), 125, nets, 12) == 3

"""The recipe search of `directnas compress` (--target-ratio / --max-loss) and the training recipe
that model.pt carries into the retraining."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import directnas
from directnas.cli.compress_flags import compress_options
from directnas.cli.main import build_parser, main
from directnas.compression.options import compress_config
from directnas.compression.recipe import Option, choose, kmeans_fast, quantized
from directnas.utils.fileio import torch_load

torch.set_num_threads(1)
FAST = ["--threads", "1", "--repeats", "3", "--quick", "--valid-images", "300"]


@pytest.fixture(scope="module")
def mlp(tiny_idx_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mlp")
    rc = main(["train", "--model", "lenet-300-100", "--data", str(tiny_idx_dir), "--out", str(out),
               "--train-epochs", "2", "--train-batch-size", "64", "--threads", "1",
               "--repeats", "3", "--warmup", "1"])
    assert rc == 0
    return out


def test_kmeans_fast_keeps_zeros_and_at_most_2_to_the_bits_values():
    w = torch.randn(50, 40)
    w[w.abs() < 0.5] = 0
    for bits in (2, 3, 5):
        q = quantized(w, bits)
        assert torch.equal(q == 0, w == 0)
        assert torch.unique(q[q != 0]).numel() <= 1 << bits
    err = [float((quantized(w, b) - w).abs().mean()) for b in (2, 4, 6)]
    assert err[0] > err[1] > err[2]
    v = np.array([0.0, 0.0, 1.0, 1.0, 5.0])
    assert set(kmeans_fast(v, 2)) == {0.0, 5.0} or set(kmeans_fast(v, 2)) == {1.0 / 2, 5.0}


def test_choose_finds_the_least_drop_that_fits_the_budget():
    rng = np.random.default_rng(0)
    options = {}
    for layer in "abc":  # sizes fall and drops rise with the compression of an option
        sizes = np.sort(rng.integers(50, 1000, 6))[::-1]
        drops = np.sort(rng.random(6) * 0.05)
        options[layer] = [Option(0.1 * i, 4, float(d), int(s))
                          for i, (d, s) in enumerate(zip(drops, sizes))]
    fixed = 100
    for budget in (900, 1300, 1800, 2500):
        c = choose(options, budget, fixed)
        assert fixed + sum(o.size_bytes for o in c.values()) <= budget
        best = min((sum(o.drop for o in combo) for combo in itertools.product(*options.values())
                    if fixed + sum(o.size_bytes for o in combo) <= budget))
        assert sum(o.drop for o in c.values()) <= best + 0.01  # near the brute-force optimum


def test_settings_whose_measured_drops_tie_are_priced_by_distortion():
    """Every setting measured free (drop 0): a budget above the smallest spends its bytes on the
    least distorted settings, so a lower ratio gives a gentler recipe (before, every budget got
    the smallest free setting, and --max-loss could not go below it)."""
    options = {layer: [Option(0.1 * i, 4, 0.0, 1000 - 150 * i, distortion=0.02 * i ** 2)
                       for i in range(6)] for layer in "ab"}
    fixed = 0
    sizes = []
    for budget in (500, 900, 1300, 1700, 2000):
        c = choose(options, budget, fixed)
        used = sum(o.size_bytes for o in c.values())
        assert used <= budget
        sizes.append(used)
    assert sizes == sorted(sizes) and sizes[0] == 500 and sizes[-1] == 2000
    assert len(set(sizes)) == len(sizes)


def test_train_stores_the_recipe_and_lenet_trains_without_crop_flip(mlp):
    ck = torch_load(mlp / "model.pt")
    assert ck["recipe"]["augment"] is False and ck["recipe"]["weight_decay"] == 5e-4
    cfg = json.loads((mlp / "train_config.json").read_text())
    assert cfg["augment"] is False


def config_from(argv: list[str], recipe: dict):
    """The config ``directnas compress ARGV`` runs a model trained with ``recipe`` with."""
    return compress_config(recipe, **compress_options(build_parser().parse_args(argv)))


def test_retraining_follows_the_model_recipe_unless_overridden():
    base = ["compress", "--model", "m", "--method", "prune", "--out", "o"]
    recipe = {"augment": False, "label_smoothing": 0.0, "weight_decay": 5e-4}
    ft = config_from(base, recipe).finetune
    assert (ft.augment, ft.label_smoothing, ft.weight_decay) == (False, 0.0, 5e-4)
    ft = config_from([*base, "--finetune-augment", "--finetune-wd", "1e-4"], recipe).finetune
    assert ft.augment and ft.weight_decay == 1e-4
    old = config_from(base, {}).finetune  # model.pt without a recipe
    assert old.augment and old.weight_decay == 5e-5
    searched = config_from([*base, "--target-ratio", "20"], recipe)
    assert (searched.prune_steps, searched.finetune.epochs, searched.finetune.lr) == (5, 5, 0.05)


def test_target_ratio_chooses_per_layer_settings_and_saves_them(mlp, tiny_idx_dir, tmp_path,
                                                                 capsys):
    out = tmp_path / "t"
    rc = main(["compress", "--model", str(mlp), "--method", "prune,share,huffman",
               "--target-ratio", "20", "--data", str(tiny_idx_dir), "--out", str(out), *FAST])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    r = m["recipe"]
    assert r["target_ratio"] == 20 and set(r["layer_sparsity"]) == set(r["layer_bits"]) == {
        "1", "3", "5"}
    assert r["finetune"]["augment"] is False and r["finetune"]["weight_decay"] == 5e-4
    found = m["methods_report"]["recipe"]
    assert found["predicted_ratio"] >= 20
    rows = {row["layer"]: row for row in json.loads((out / "layers.json").read_text())}
    for name, bits in r["layer_bits"].items():
        assert rows[name]["unique_values"] <= (1 << bits) + 1  # + the zero
        assert rows[name]["target_sparsity"] == pytest.approx(r["layer_sparsity"][name])
    assert m["compression_ratio"] > 15 and "target_ratio_met" in m
    printed = capsys.readouterr().out
    assert "recipe (target 20x)" in printed and "augment off" in printed


def test_max_loss_probes_and_the_library_call_returns_metrics(mlp, tiny_idx_dir, tmp_path):
    r = directnas.compress(mlp, str(tiny_idx_dir), out=tmp_path / "s", max_loss=2, threads=1,
                           quick=True, latency_repeats=3, valid_images=300, probe_steps=5)
    m = r.metrics
    assert m == json.loads((tmp_path / "s" / "metrics.json").read_text())
    probes = m["methods_report"]["recipe"]["probes"]
    assert probes and all({"ratio", "probe_loss"} <= set(p) for p in probes)
    assert m["recipe"]["max_loss"] == pytest.approx(0.02) and "max_loss_met" in m
    kept = [p for p in probes if p["probe_loss"] <= 0.02]
    if kept:  # the chosen recipe is the largest ratio that probed within the bound
        assert m["methods_report"]["recipe"]["predicted_ratio"] == pytest.approx(
            max(p["predicted_ratio"] for p in kept))
    # every probe is scored against the control: the same retraining of the uncompressed net
    control = m["methods_report"]["probe_control"]
    assert control["steps"] == 5 and 0 <= control["accuracy_after_retraining"] <= 1
    for p in probes:
        assert p["probe_loss"] == pytest.approx(control["accuracy_after_retraining"] - p["probe_accuracy"])


def test_rerun_reuses_the_sensitivity_curves(mlp, tiny_idx_dir, tmp_path, monkeypatch):
    """The same compression into the same folder does not measure the curves again; other
    weights do."""
    import directnas.compression.recipe as recipe

    argv = ["compress", "--model", str(mlp), "--method", "prune,share,huffman", "--target-ratio",
            "20", "--data", str(tiny_idx_dir), "--out", str(tmp_path / "t"), *FAST]
    assert main(argv) == 0
    first = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert (tmp_path / "t" / recipe.CURVES_FILE).is_file()

    def fail(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("curves measured again")

    monkeypatch.setattr(recipe, "sensitivity", fail)
    monkeypatch.setattr(recipe, "share_sensitivity", fail)
    assert main(argv) == 0
    again = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert again["methods_report"]["recipe_curves"] == first["methods_report"]["recipe_curves"]
    cache = tmp_path / "t" / recipe.CURVES_FILE
    data = json.loads(cache.read_text())
    data["key"]["weights_and_images"] = "other"
    cache.write_text(json.dumps(data))
    with pytest.raises(AssertionError, match="measured again"):
        main(argv)


@pytest.mark.parametrize("argv, word", [
    (["--target-ratio", "20", "--max-loss", "1"], "not both"),
    (["--target-ratio", "0.5"], "--target-ratio"),
    (["--max-loss", "-1"], "--max-loss"),
    (["--target-ratio", "20", "--sparsity", "0.9"], "--sparsity"),
    (["--target-ratio", "1e6"], "ask for less"),
])
def test_bad_recipe_options_are_one_line_errors(mlp, tiny_idx_dir, tmp_path, capsys, argv, word):
    rc = main(["compress", "--model", str(mlp), "--method", "prune,share,huffman",
               "--data", str(tiny_idx_dir), "--out", str(tmp_path / "o"), *FAST, *argv])
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln]
    assert rc == 2 and len(errors) == 1 and word in errors[0]  # (log lines may precede it)


def test_recipe_needs_prune_or_share(mlp, tiny_idx_dir, tmp_path, capsys):
    rc = main(["compress", "--model", str(mlp), "--method", "fixed-point", "--target-ratio", "4",
               "--data", str(tiny_idx_dir), "--out", str(tmp_path / "o"), *FAST])
    assert rc == 2 and "prune" in capsys.readouterr().err


def test_max_loss_refines_between_the_ladder_rungs(monkeypatch):
    """The ladder steps by 15 %; two geometric bisections between the last rung kept and the
    first refused put the ratio found within 4 % of where the probe loss crosses the bound."""
    import directnas.compression.recipe as recipe

    crossing = 10.0  # the probe loses 0.5 points below this ratio, 2 points above it

    class FakeSearch:
        curves = {"valid_accuracy": 0.9}

        def max_ratio(self) -> float:
            return 40.0

        def recipe(self, ratio: float) -> recipe.Recipe:
            return recipe.Recipe({"l": round(ratio, 6)}, {"l": 4}, int(1e6 / ratio), ratio, 0.0)

    class FakeState:
        report: dict = {}
        cfg = type("C", (), {"probe_steps": 1})()

        def valid(self) -> list:
            return []

    def fake_probe(state, r, batches):  # noqa: ANN001, ANN202
        if r is None:
            return 0.9
        return 0.9 - (0.005 if r.predicted_ratio <= crossing else 0.02)

    monkeypatch.setattr(recipe, "build_search", lambda state, methods: FakeSearch())
    monkeypatch.setattr(recipe, "probe", fake_probe)
    r = recipe.search_recipe(FakeState(), ["prune", "share"], target_ratio=None, max_loss=0.01)
    assert crossing / 1.04 <= r.predicted_ratio <= crossing
    ratios = [p["ratio"] for p in r.probes]
    assert len(ratios) == len(set(ratios))  # no recipe probed twice
    refined = [x for x in ratios if not any(abs(x - 2.0 * 1.15 ** i) < 1e-9 for i in range(40))]
    assert len(refined) == recipe.REFINE

"""Latency tables fitted from whole-network measurements: fit, evaluate, design, search."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from directnas.cli.main import main
from directnas.errors import UserError
from directnas.latency import fit as F
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import predict_arch_ms
from directnas.space.space import load_space

torch.set_num_threads(1)
SPACE = load_space("fbnet-cifar100")


def synthetic(n, seed=0, noise=0.005, interaction=0.0, outliers=0.0):
    """Random archs; latency = 3 ms + per-(layer, op) terms (equal-shape layers differ), with
    relative noise, an optional pair interaction and optional +60 % outliers."""
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(99).uniform(0.05, 0.6, (22, 9))
    truth[:, 8] = 0.0
    idx = rng.integers(0, 9, (n, 22))
    y = 3.0 + truth[np.arange(22), idx].sum(1)
    y *= 1 + interaction * ((idx[:, 2] == 3) & (idx[:, 3] == 3))
    y *= 1 + noise * rng.standard_normal(n)
    y *= 1 + 0.6 * (rng.random(n) < outliers)
    return idx, y


def write_csv(path, idx, y):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch_id", "op_idx_list", "dev"])
        for i, (row, v) in enumerate(zip(idx, y)):
            w.writerow([i, " ".join(map(str, row)), v])


def mape(p, y):
    return float(np.mean(np.abs(p - y) / y))


def test_additive_fit_recovers_layer_specific_terms():
    idx, y = synthetic(700)
    fitted = F.fit_model(SPACE, idx[:500], y[:500], "additive")
    table = F.to_table(SPACE, fitted, {"device": "dev"})
    pred = F.predict_table(table, SPACE, idx[500:])
    assert mape(pred, y[500:]) < 0.01
    # layers 2 and 3 share a shape (24->24, s1, 32x32) but have their own entries
    key = "mbconv:k3:e6:in24:out24:s1:hw32"
    assert table.entries[f"L2:{key}"]["ms"] != table.entries[f"L3:{key}"]["ms"]
    assert key in table.entries and all(v["ms"] >= 0 for v in table.entries.values())
    # the predictor and the search read the same per-layer entries
    arch = F.arch_from_op_indices(SPACE, idx[600])
    assert predict_arch_ms(arch, table) == pytest.approx(pred[100], rel=1e-9)
    fixed, per_layer = table.space_latencies(SPACE)
    assert per_layer[2][3] == table.entries[f"L2:{key}"]["ms"]
    # a table without the layer entries falls back to the plain keys
    plain = LatencyTable(table.meta, {k: v for k, v in table.entries.items() if not k.startswith("L")})
    assert plain.space_latencies(SPACE)[1][2][3] == table.entries[key]["ms"]


def test_robust_fit_ignores_outliers_and_trees_learn_an_interaction(tmp_path):
    idx, y = synthetic(900, outliers=0.15)
    tr, te = slice(0, 700), slice(700, 900)
    ls = F.fit_model(SPACE, idx[tr], y[tr], "ls").predict(F.Featurizer(SPACE), idx[te])
    rb = F.fit_model(SPACE, idx[tr], y[tr], "robust").predict(F.Featurizer(SPACE), idx[te])
    assert mape(rb, y[te]) < 0.8 * mape(ls, y[te])

    idx, y = synthetic(900, seed=1, interaction=0.4)
    add = F.fit_model(SPACE, idx[tr], y[tr], "additive")
    gbm = F.fit_model(SPACE, idx[tr], y[tr], "additive+gbm")
    feat = F.Featurizer(SPACE, shared=False)
    assert mape(gbm.predict(feat, idx[te]), y[te]) < 0.7 * mape(add.predict(feat, idx[te]), y[te])
    table = F.to_table(SPACE, gbm, {})
    table.save(tmp_path / "t.json")
    loaded = LatencyTable.load(tmp_path / "t.json")  # the trees are plain JSON in meta
    assert np.allclose(F.predict_table(loaded, SPACE, idx[te]), gbm.predict(feat, idx[te]))


def test_design_is_balanced_and_selection_covers_pairs():
    d = F.balanced_design(SPACE, 45, seed=3, tries=3, criterion="coverage")
    assert d.shape == (45, 22)
    for col in d.T:
        assert np.bincount(col, minlength=9).tolist() == [5] * 9
    pool = np.random.default_rng(0).integers(0, 9, (600, 22))
    rows = F.select_balanced(SPACE, pool, 90, criterion="coverage")
    assert len(set(rows.tolist())) == 90
    counts = np.stack([np.bincount(pool[rows, l], minlength=9) for l in range(22)])
    rand = np.stack([np.bincount(pool[:90, l], minlength=9) for l in range(22)])
    assert counts.min() >= 7 and counts.std() < rand.std()


def test_d_optimal_design_beats_random_rows():
    pool = np.random.default_rng(0).integers(0, 9, (500, 22))
    center = F.Featurizer(SPACE)(pool).mean(0)
    rows = F.select_balanced(SPACE, pool, 60, seed=1)  # default: Bayesian D-optimal
    assert len(set(rows.tolist())) == 60 and rows.max() < 500
    crit = F.bayes_logdet(SPACE, pool[rows], center=center)
    for s in range(3):
        rand = np.random.default_rng(s).choice(500, 60, replace=False)
        assert crit > F.bayes_logdet(SPACE, pool[rand], center=center) + 5
    # generated from scratch: every (layer, op) pair is used, more D-optimal than random archs
    d = F.balanced_design(SPACE, 45, seed=3, tries=4)
    assert d.shape == (45, 22) and len(np.unique(d, axis=0)) == 45
    assert all(np.bincount(col, minlength=9).min() >= 1 for col in d.T)
    rand = np.random.default_rng(5).integers(0, 9, (45, 22))
    ref = F.Featurizer(SPACE)(np.random.default_rng(6).integers(0, 9, (2000, 22))).mean(0)
    assert F.bayes_logdet(SPACE, d, center=ref) > F.bayes_logdet(SPACE, rand, center=ref) + 5
    for bad in ({"criterion": "nope"}, {"n": 0}):
        with pytest.raises(UserError):
            F.select_balanced(SPACE, pool, **{"n": 10, **bad})
    with pytest.raises(UserError):
        F.select_balanced(SPACE, pool, 501)


def test_cli_fit_evaluate_design(tmp_path, capsys):
    idx, y = synthetic(300)
    meas = tmp_path / "m.csv"
    write_csv(meas, idx, y)
    table = tmp_path / "t.json"
    assert main(["latency", "fit", "--space", "fbnet-cifar100", "--measurements", str(meas),
                 "--column", "dev", "--rows", "0:250", "--out", str(table)]) == 0
    t = json.loads(table.read_text())
    assert t["meta"]["samples"] == 250 and t["meta"]["rows"] == [0, 250]
    out = tmp_path / "e.json"
    assert main(["latency", "evaluate", "--table", str(table), "--measurements", str(meas),
                 "--column", "dev", "--rows", "250:300", "--out", str(out)]) == 0
    ev = json.loads(out.read_text())
    assert ev["samples"] == 50 and ev["mape"] < 0.03 and ev["kendall_tau"] > 0.8
    assert ev["rmse_ms"] > 0 and "MAPE" in capsys.readouterr().out
    # the design command writes the archs list format the fit reads back
    archs = tmp_path / "a.csv"
    assert main(["latency", "design", "--space", "fbnet-cifar100", "--n", "18",
                 "--out", str(archs)]) == 0
    rows = list(csv.DictReader(archs.open()))
    assert len(rows) == 18 and rows[0]["ops"].split()[0] in F.FBNET_OPS
    assert main(["latency", "design", "--space", "fbnet-cifar100", "--n", "9",
                 "--out", str(tmp_path / "a.json")]) == 0
    assert len(json.loads((tmp_path / "a.json").read_text())["archs"]) == 9
    # bad input: one line, exit 2
    for argv in (["--column", "nope"], ["--column", "dev", "--rows", "5:2"],
                 ["--column", "dev", "--rows", "0:999"]):
        rc = main(["latency", "fit", "--space", "fbnet-cifar100", "--measurements", str(meas),
                   "--out", str(tmp_path / "x.json"), *argv])
        assert rc == 2
    with pytest.raises(UserError):
        F.parse_rows("abc")


def write_image_folder(root, classes=100, per_class=1):
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class + 1), ("test", 1)):
        for c in range(classes):
            d = root / split / f"c{c:03d}"
            d.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(a).save(d / f"{i}.png")


def test_search_with_a_fitted_table(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    idx, y = synthetic(200)
    meas = tmp_path / "m.csv"
    write_csv(meas, idx, y)
    table = tmp_path / "t.json"
    assert main(["latency", "fit", "--space", "fbnet-cifar100", "--measurements", str(meas),
                 "--column", "dev", "--out", str(table)]) == 0
    data = tmp_path / "data"
    write_image_folder(data)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("max_steps: 2\nvalid_size: 40\narch_every: 1\nchannels_last: false\n")
    out = tmp_path / "run"
    rc = main(["search", "--space", "fbnet-cifar100", "--data", str(data), "--latency-table",
               str(table), "--out", str(out), "--config", str(cfg), "--warmup-epochs", "0",
               "--epochs", "1", "--batch-size", "8", "--target-latency", "8", "--threads", "1"])
    assert rc == 0
    arch = json.loads((out / "arch.json").read_text())
    assert len(arch["layers"]) == 22
    ops = [l["op"] for l in arch["layers"]]
    expect = F.predict_table(LatencyTable.load(table), SPACE,
                             np.array([[F.FBNET_OPS.index(o) for o in ops]]))[0]
    assert arch["predicted_latency_ms"] == pytest.approx(expect, rel=1e-6)


def test_auto_picks_by_cross_validation_on_the_given_rows_only():
    # clean data: the plain additive fit is chosen (simplest within one standard error)
    idx, y = synthetic(400, seed=2)
    fitted = F.fit_model(SPACE, idx, y, "auto", candidates=("additive", "robust"))
    assert fitted.name == "additive" and fitted.additive.info["auto"]["chosen"] == "additive"
    # many +60 % outliers: the robust fit wins clearly in blocked CV
    idx, y = synthetic(400, seed=3, outliers=0.25)
    fitted = F.fit_model(SPACE, idx, y, "auto", candidates=("additive", "robust"), folds=3)
    info = fitted.additive.info["auto"]
    assert fitted.name == "robust" and len(info["cv_mape_folds"]["robust"]) == 3
    assert info["cv_mape"]["robust"] < info["cv_mape"]["additive"]
    # the rule: simplest model within one paired standard error of the best
    cv = {"additive": np.array([0.10, 0.12, 0.11]), "robust": np.array([0.099, 0.121, 0.108])}
    assert F.choose_model(cv) == "additive"
    cv["robust"] = np.array([0.08, 0.09, 0.085])
    assert F.choose_model(cv) == "robust"
    for kw in ({"candidates": ("auto",)}, {"candidates": ()}, {"folds": 1}, {"folds": 200}):
        with pytest.raises(UserError):
            F.fit_model(SPACE, idx, y, "auto", **kw)

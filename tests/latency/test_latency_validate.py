"""The predictor's learned correction and `directnas latency validate`."""

import json
import math

import pytest
import torch

from directnas.cli.main import main
from directnas.errors import UserError
from directnas.latency.correction import Correction
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import arch_features, fit_correction, predict_arch_ms
from directnas.latency.validate import metrics, sample_archs
from directnas.nas.supernet import Supernet
from directnas.space.space import SearchSpace


def _table(space: SearchSpace) -> LatencyTable:
    """A synthetic table: every key costs a distinct, known amount."""
    keys = LatencyTable().required_keys(space)
    return LatencyTable({"backend": "synthetic"}, {k: {"ms": 0.1 * (i + 1)} for i, k in enumerate(keys)})


def test_sample_archs_is_seeded_and_distinct(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    a = sample_archs(space, 12, seed=3)
    assert [x.ops for x in a] == [x.ops for x in sample_archs(space, 12, seed=3)]
    assert [x.ops for x in a] != [x.ops for x in sample_archs(space, 12, seed=4)]
    assert len({tuple(x.ops) for x in a}) == 12


def test_metrics_on_known_pairs():
    m = metrics([1.0, 2.0, 3.0, 5.0], [1.0, 2.0, 4.0, 4.0])
    assert m["rmse_ms"] == pytest.approx(math.sqrt(0.5))
    assert m["mape"] == pytest.approx((0.25 + 0.25) / 4)
    assert m["kendall_tau"] == pytest.approx(0.9128709)  # one tie in measured
    assert m["pearson_r"] == pytest.approx(math.sqrt(6.75 / 8.75))


def test_correction_folds_into_per_op_costs(tiny_space_dict):
    """predict_arch_ms with a correction == the linear model on the arch's features, and the
    supernet's E[LAT] at a one-hot alpha equals that prediction."""
    space = SearchSpace.from_dict(tiny_space_dict)
    table = _table(space)
    names = ["sum_ms", "layers", "stage0_ms", "stage1_ms"]
    table.correction = Correction(names, [0.9, 0.05, 0.2, -0.1], 0.3)
    for arch in sample_archs(space, 6, seed=1):
        f = arch_features(arch, table, names)
        want = 0.3 + sum(c * x for c, x in zip(table.correction.coef, f))
        assert predict_arch_ms(arch, table) == pytest.approx(want)
        assert predict_arch_ms(arch, table, corrected=False) == pytest.approx(f[0])
        net = Supernet(space)
        net.set_latency(*table.space_latencies(space))
        with torch.no_grad():
            for m, op in zip(net.mixed, arch.ops):
                m.alpha.fill_(-1e4)
                m.alpha[m.names.index(op)] = 0.0
        assert float(net.expected_latency().detach()) == pytest.approx(want, rel=1e-5)


def test_fit_correction_recovers_a_linear_overhead(tiny_space_dict, tmp_path):
    space = SearchSpace.from_dict(tiny_space_dict)
    table = _table(space)
    archs = sample_archs(space, 16, seed=0)
    # "measured" = 1.2 x table sum + 0.07 ms per non-zero layer + 0.5 ms
    measured = [1.2 * predict_arch_ms(a, table) + 0.07 * a.depth + 0.5 for a in archs]
    c = fit_correction(archs, measured, table, kind="basic", ridge=1e-9)
    assert c.coef == pytest.approx([1.2, 0.07], abs=1e-4) and c.intercept == pytest.approx(0.5, abs=1e-3)
    table.correction = c
    assert [predict_arch_ms(a, table) for a in archs] == pytest.approx(measured, abs=1e-4)
    table.save(tmp_path / "t.json")
    back = LatencyTable.load(tmp_path / "t.json")
    assert back.correction == c
    assert back.merge(back).correction is None  # merged entries invalidate the fit
    with pytest.raises(UserError, match="at least"):
        fit_correction(archs[:3], measured[:3], table, kind="stages")


def test_bad_correction_in_a_table_is_a_user_error(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"schema_version": 1, "entries": {},
                                                 "correction": {"kind": "linear", "features": ["depth"],
                                                                "coef": [1.0], "intercept": 0}}))
    with pytest.raises(UserError, match="unknown feature 'depth'"):
        LatencyTable.load(tmp_path / "t.json")


def test_validate_command(tmp_path, tiny_space_yaml, tiny_space_dict, capsys):
    out, plot, saved = tmp_path / "v.json", tmp_path / "v.png", tmp_path / "t.json"
    rc = main(["latency", "validate", "--space", str(tiny_space_yaml), "--samples", "8", "--rounds", "2",
               "--repeats", "3", "--warmup", "1", "--threads", "1", "--out", str(out), "--plot", str(plot),
               "--fit-correction", "--save-table", str(saved)])
    assert rc == 0
    r = json.loads(out.read_text())
    for key in ("samples", "rmse_ms", "mape", "pearson_r", "kendall_tau", "pairs", "holdout", "correction"):
        assert key in r
    assert r["samples"] == 8 and len(r["pairs"]) == 8 and r["rounds"] == 2
    assert all(p["measured_ms"] > 0 and p["predicted_ms"] > 0 for p in r["pairs"])
    assert r["holdout"]["fit_samples"] == 4 and r["holdout"]["test_samples"] == 4
    assert plot.read_bytes()[:4] == b"\x89PNG"
    space = SearchSpace.from_dict(tiny_space_dict)
    table = LatencyTable.load(saved)
    table.check_covers(space)
    assert table.correction is not None and table.correction.fit["samples"] == 8
    printed = capsys.readouterr().out
    assert "Kendall tau" in printed and "MAPE" in printed

    # validating a given table: its entries are not re-measured, and its predictions are reported
    rc = main(["latency", "validate", "--space", str(tiny_space_yaml), "--samples", "3", "--rounds", "1",
               "--repeats", "2", "--warmup", "0", "--threads", "1", "--table", str(saved),
               "--out", str(tmp_path / "v2.json")])
    assert rc == 0
    r2 = json.loads((tmp_path / "v2.json").read_text())
    assert r2["table_digest"] == table.digest() and r2["table_has_correction"]
    assert r2["pairs"][0]["predicted_ms"] == pytest.approx(
        predict_arch_ms(sample_archs(space, 3, seed=1)[0], table))
    assert main(["latency", "validate", "--space", str(tiny_space_yaml), "--samples", "1",
                 "--out", str(tmp_path / "v3.json")]) == 2

"""Round trip: export-ops -> scripts/ondevice_profile.py (numpy + onnxruntime only) -> import."""

import json
import subprocess
import sys

import pytest

from directnas.cli.main import main
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import predict_arch_ms
from directnas.space.arch import uniform_arch
from directnas.space.space import SearchSpace
from helpers import SCRIPTS

SCRIPT = SCRIPTS / "ondevice_profile.py"
# Runs the script with torch and directnas made unimportable: it must need neither.
NO_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.modules['directnas'] = None; "
            "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def test_ondevice_round_trip(tmp_path, tiny_space_dict, tiny_space_yaml, capsys):
    space = SearchSpace.from_dict(tiny_space_dict)
    bundle = tmp_path / "bundle"
    assert main(["latency", "export-ops", "--space", str(tiny_space_yaml), "--out", str(bundle)]) == 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    keys = [op["key"] for op in manifest["ops"]]
    assert sorted(keys) == sorted(LatencyTable().required_keys(space))
    assert all((bundle / op["file"]).is_file() for op in manifest["ops"])

    out = tmp_path / "device.json"
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, str(SCRIPT), str(bundle), "--out", str(out),
                           "--threads", "1", "--warmup", "1", "--repeats", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["format"] == "directnas-ondevice" and res["meta"]["threads"] == 1
    assert set(res["results"]) == set(keys)

    table_path = tmp_path / "device_table.json"
    capsys.readouterr()
    assert main(["latency", "import", "--format", "ondevice", str(out), "--space", str(tiny_space_yaml),
                 "--out", str(table_path)]) == 0
    table = LatencyTable.load(table_path)
    table.check_covers(space)
    assert table.meta["onnxruntime"] and table.meta["space_fingerprint"] == space.fingerprint()
    assert all(v["ms"] > 0 for v in table.entries.values())
    assert all(table.ms(k) == res["results"][k]["ms"] for k in keys)
    fixed = sum(res["results"][k]["ms"] for k in space.fixed_keys())
    layers = sum(res["results"][space.layer_keys(l)[0]]["ms"] for l in space.layers)
    assert predict_arch_ms(uniform_arch(space, "k3_e3"), table) == pytest.approx(fixed + layers)


def test_script_rejects_a_folder_that_is_not_a_bundle(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--out", str(tmp_path / "o.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "export-ops" in proc.stderr
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("bad", [["--threads", "0"], ["--repeats", "0"]])
def test_script_rejects_bad_flags(tmp_path, bad):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--out", str(tmp_path / "o.json"), *bad],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2

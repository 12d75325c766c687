"""Importing foreign tables: the official ProxylessNAS phone table priced on imagenet-mobile,
and the show / merge / import commands."""

import json

import pytest
import torch

from directnas.cli.main import main
from directnas.errors import UserError
from directnas.latency.importers import import_table
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import predict_arch_ms
from directnas.nas.gates import BinaryGates
from directnas.nas.loss import HardwareLoss
from directnas.nas.supernet import Supernet
from directnas.space.arch import Arch, uniform_arch
from directnas.space.space import SearchSpace, load_space
from helpers import SHARED_DATA

MOBILE_YAML = SHARED_DATA / "proxylessnas-mobile" / "mobile_trim.yaml"
needs_yaml = pytest.mark.skipif(not MOBILE_YAML.is_file(), reason="ProxylessNAS table not present")


@pytest.fixture(scope="module")
def mobile():
    space = load_space("imagenet-mobile")
    return space, import_table("proxyless-yaml", MOBILE_YAML, space)


@needs_yaml
def test_proxyless_table_prices_imagenet_mobile_as_its_readme_says(mobile):
    space, table = mobile
    table.check_covers(space)
    stem, first, head = space.fixed_keys()
    assert stem == "stem:k3:in3:out32:s2:hw224" and head == "head:in320:out1280:hw7:cls1000"
    assert first == "mbconv:k3:e1:in32:out16:s1:hw112"
    assert table.ms(stem) == pytest.approx(4.0838, abs=1e-4)
    assert table.ms(head) == pytest.approx(3.0886 + 0.3096, abs=1e-3)  # Conv_1 + Logits
    assert table.ms(stem) + table.ms(head) == pytest.approx(7.48, abs=0.005)  # README "fixed"
    assert predict_arch_ms(uniform_arch(space, "k3_e3"), table) == pytest.approx(76.05, abs=0.005)
    assert predict_arch_ms(uniform_arch(space, "k7_e6"), table) == pytest.approx(191.03, abs=0.005)
    zero = Arch(space, ["zero" if "zero" in l.candidates else "k3_e3" for l in space.layers])
    assert predict_arch_ms(zero, table) == pytest.approx(29.61, abs=0.005)


@needs_yaml
def test_imagenet_mobile_supernet_expected_latency_at_uniform_probs(mobile):
    space, table = mobile
    net = Supernet(space)
    with torch.no_grad():
        for m in net.mixed:
            m.alpha.zero_()
    net.set_latency(*table.space_latencies(space))
    assert float(net.expected_latency().detach()) == pytest.approx(113.99, abs=0.01)


@needs_yaml
def test_search_with_the_phone_table_moves_expected_latency_toward_target(mobile):
    """A few BinaryGates alpha steps on random data (small images: the latency side comes from
    the table, not from the forward pass) lower E[LAT] from 114 ms toward a 60 ms target."""
    space, table = mobile
    torch.manual_seed(0)
    net = Supernet(space)
    net.set_latency(*table.space_latencies(space))
    net.eval()  # BN uses running stats: batch 2 of random data
    gates = BinaryGates(paths=2)
    loss = HardwareLoss(form="add", target_ms=60.0, lam=5.0)
    opt = torch.optim.Adam(net.arch_parameters(), lr=0.05, betas=(0.0, 0.999), eps=1e-8)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 1000, (2,))
    before = float(net.expected_latency().detach())
    infos = [gates.alpha_step(net, x, y, objective=loss, optimizer=opt, gen=gen) for _ in range(3)]
    after = float(net.expected_latency().detach())
    assert before == pytest.approx(113.99, abs=1.0)
    assert infos[0]["expected_latency_ms"] == pytest.approx(before, abs=1e-3)
    assert after < before - 3.0  # moved toward the target
    assert predict_arch_ms(net.derive(), table) > 0


@needs_yaml
def test_phone_table_does_not_cover_another_space(tmp_path, capsys):
    rc = main(["latency", "import", "--format", "proxyless-yaml", str(MOBILE_YAML),
               "--space", "fashion-mnist", "--out", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "lacks" in err and "stem:k3:in1:out16" in err


def _tiny_yaml(space: SearchSpace) -> str:
    """A ProxylessNAS-format yaml covering the tiny space (ms = 1 + kernel + expand)."""
    lines = []

    def add(key: str, ms: float) -> None:
        lines.append(f"{key}:\n  count: 10\n  mean: {ms}\n  var: 0.01\n")

    hw = space.input_size
    h1 = hw // space.stem_stride
    add(f"Conv-input:{hw}x{hw}x{space.input_channels}-output:{h1}x{h1}x{space.stem_channels}", 2.0)
    add(f"expanded_conv-input:{h1}x{h1}x{space.stem_channels}-output:{h1}x{h1}x{space.first_channels}"
        f"-expand:1-kernel:3-stride:1-idskip:1", 1.5)
    for l in space.layers:
        ho = l.hw_out
        for op in l.candidates:
            if op == "zero":
                continue
            k, e = int(op[1]), int(op.split("_e")[1])
            add(f"expanded_conv-input:{l.hw_in}x{l.hw_in}x{l.c_in}-output:{ho}x{ho}x{l.c_out}"
                f"-expand:{e}-kernel:{k}-stride:{l.stride}-idskip:{int(l.residual)}", 1 + k + e)
    lh, lc = space.last_hw, space.last_channels
    add(f"Conv_1-input:{lh}x{lh}x{lc}-output:{lh}x{lh}x{space.head_channels}", 0.75)
    add(f"Logits-input:{lh}x{lh}x{space.head_channels}-output:{space.num_classes}", 0.25)
    return "".join(lines)


def test_import_show_merge_round_trip(tmp_path, tiny_space_dict, tiny_space_yaml, capsys):
    space = SearchSpace.from_dict(tiny_space_dict)
    (tmp_path / "t.yaml").write_text(_tiny_yaml(space))
    rc = main(["latency", "import", "--format", "proxyless-yaml", str(tmp_path / "t.yaml"),
               "--space", str(tiny_space_yaml), "--out", str(tmp_path / "a.json")])
    assert rc == 0
    a = LatencyTable.load(tmp_path / "a.json")
    a.check_covers(space)
    assert a.ms(space.fixed_keys()[-1]) == pytest.approx(1.0)  # head = Conv_1 + Logits
    assert a.ms("mbconv:k5:e3:in8:out16:s2:hw8") == pytest.approx(9.0)
    assert a.meta["backend"] == "imported:proxyless-yaml"
    arch = uniform_arch(space, "k3_e3")
    assert predict_arch_ms(arch, a) == pytest.approx(2.0 + 1.5 + 1.0 + 4 * 7.0)

    capsys.readouterr()
    assert main(["latency", "show", str(tmp_path / "a.json"), "--sort", "ms"]) == 0
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith(("mbconv", "stem", "head"))]
    ms = [float(r.split()[1]) for r in rows]
    assert len(rows) == len(a.entries) and ms == sorted(ms, reverse=True)

    b = LatencyTable({"backend": "x"}, {"mbconv:k5:e3:in8:out16:s2:hw8": {"ms": 0.5}, "extra": {"ms": 1}})
    b.save(tmp_path / "b.json")
    assert main(["latency", "merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--out", str(tmp_path / "c.json")]) == 0
    c = LatencyTable.load(tmp_path / "c.json")
    assert c.ms("mbconv:k5:e3:in8:out16:s2:hw8") == 0.5 and "extra" in c
    assert len(c.entries) == len(a.entries) + 1
    assert "mixed backends" in capsys.readouterr().out


def test_bad_foreign_tables_are_user_errors(tmp_path, tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    (tmp_path / "neg.yaml").write_text("Conv-input:16x16x1-output:8x8x8:\n  mean: -1\n")
    with pytest.raises(UserError, match="non-negative 'mean'"):
        import_table("proxyless-yaml", tmp_path / "neg.yaml", space)
    with pytest.raises(UserError, match="needs --space"):
        import_table("proxyless-yaml", tmp_path / "neg.yaml", None)
    (tmp_path / "x.json").write_text(json.dumps({"entries": {}}))
    with pytest.raises(UserError, match="ondevice_profile.py"):
        import_table("ondevice", tmp_path / "x.json", space)
    with pytest.raises(UserError, match="unknown table format"):
        import_table("tflite", tmp_path / "x.json", space)

"""The nas-bench-macro preset builds NAS-Bench-Macro's nets layer for layer: every one of the
6,561 nets has the table's parameter count and the checked ones its MACs; arch strings round-trip;
the projection is profiled like any op; a quick search returns a net of the benchmark."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import directnas
from directnas.errors import UserError
from directnas.latency.measure import Protocol, profile_space, reference_arch, space_modules
from directnas.latency.table import LatencyTable
from directnas.nas.supernet import Supernet
from directnas.space.arch import Arch, build_fixed, uniform_arch
from directnas.space.nas_bench_macro import (DIGIT_OPS, all_bench_strings, bench_space,
                                             from_bench_string, load_bench, to_bench_string)
from directnas.space.ops import build_op
from directnas.space.space import SearchSpace, load_space
from directnas.training.train_net import count_macs
from helpers import fake_table
from helpers import SHARED_DATA

# The table lives beside the repository (../shared), never fetched by the tests.
TABLE = SHARED_DATA / "nas-bench-macro" / "nas-bench-macro_cifar10.json"
needs_table = pytest.mark.skipif(
    not TABLE.is_file(),
    reason="NAS-Bench-Macro table ../shared/data/nas-bench-macro/nas-bench-macro_cifar10.json "
           "(beside the repository) is absent")


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return bench_space()


@pytest.fixture(scope="module")
def table() -> dict:
    return load_bench(TABLE)


def test_layer_table_is_the_benchmarks(space):
    assert (space.input_size, space.input_channels, space.num_classes) == (32, 3, 10)
    assert (space.stem_channels, space.stem_kernel, space.stem_stride) == (32, 3, 1)
    assert space.first_channels == 0 and space.head_channels == 1280 and space.head_dropout == 0
    assert [(l.stage, l.c_in, l.c_out, l.stride, l.hw_in) for l in space.layers] == [
        (0, 32, 64, 2, 32), (0, 64, 64, 1, 16),
        (1, 64, 128, 2, 16), (1, 128, 128, 1, 8), (1, 128, 128, 1, 8),
        (2, 128, 256, 2, 8), (2, 256, 256, 1, 4), (2, 256, 256, 1, 4)]
    assert all(l.candidates == DIGIT_OPS for l in space.layers) and space.num_archs() == 3 ** 8
    assert SearchSpace.from_dict(space.to_dict()) == space  # keeps activation and skip


def test_nets_use_relu_and_the_projection(space):
    net = from_bench_string(space, "02000000").build()
    acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    assert acts and all(type(m) is nn.ReLU for m in acts)  # stem, MBConv and head: ReLU
    proj, ident = net.blocks[0], net.blocks[3]  # layer 3 keeps its shape
    assert [type(m) for m in proj] == [nn.Conv2d, nn.BatchNorm2d]  # no activation
    conv = proj[0]
    assert (conv.kernel_size, conv.stride, conv.bias) == ((1, 1), (2, 2), None)
    assert isinstance(ident, nn.Identity)
    assert net.head.classifier.bias is not None and isinstance(net.head.dropout, nn.Identity)
    x = torch.randn(2, 3, 32, 32)
    assert net.eval()(x).shape == (2, 10)


def test_other_presets_keep_relu6_and_their_fingerprint():
    for name in ("cifar", "fashion-mnist", "fbnet-cifar100"):
        s = load_space(name)
        assert s.activation == "relu6" and "activation" not in s.to_dict()
    net = uniform_arch(load_space("cifar"), "k3_e3").build()
    types = {type(m) for m in net.modules()}
    assert nn.ReLU6 in types and nn.ReLU not in types
    with pytest.raises(UserError, match="activation"):
        SearchSpace.from_dict({**load_space("cifar").to_dict(), "activation": "gelu"})


def test_every_arch_string_round_trips(space):
    strings = list(all_bench_strings())
    assert len(set(strings)) == 3 ** 8
    for s in strings:
        arch = from_bench_string(space, s)
        assert to_bench_string(arch) == s
    assert from_bench_string(space, "01201122").ops == [
        "skip", "k3_e3", "k5_e6", "skip", "k3_e3", "k3_e3", "k5_e6", "k5_e6"]


def test_a_saved_arch_keeps_its_bench_string(space, tmp_path):
    from_bench_string(space, "01201122").save(tmp_path / "arch.json")
    back = Arch.load(tmp_path / "arch.json")
    assert to_bench_string(back) == "01201122" and back.space.activation == "relu"


@pytest.mark.parametrize("bad", ["0120112", "012011220", "01201123", "0120112a", "", 1201122, None])
def test_bad_strings_are_one_line_errors(space, bad):
    with pytest.raises(UserError, match="arch string") as e:
        from_bench_string(space, bad)
    assert "\n" not in str(e.value)


def test_archs_of_other_spaces_are_refused(space):
    cifar = load_space("cifar")
    with pytest.raises(UserError, match="not of the 'nas-bench-macro' preset") as e:
        to_bench_string(Arch(cifar, ["k3_e3"] * len(cifar.layers)))
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="not of the 'nas-bench-macro' preset"):
        from_bench_string(cifar, "00000000")
    hundred = SearchSpace.from_dict({**space.to_dict(), "num_classes": 100})
    with pytest.raises(UserError, match="not of the"):
        to_bench_string(Arch(hundred, list(from_bench_string(space, "11111111").ops)))


@needs_table
def test_every_net_has_the_tables_parameter_count(space, table):
    """All 6,561 counts from per-layer counts (each distinct op at each layer built once); the
    sum is proved equal to the real net's count on 300 fully built nets."""
    assert set(table) == set(all_bench_strings())
    stem, first, head = build_fixed(space)
    fixed = n_params(stem) + n_params(first) + n_params(head)
    per_layer = [[n_params(build_op(op, l.c_in, l.c_out, l.stride, residual=l.residual,
                                    activation=space.activation)) for op in DIGIT_OPS]
                 for l in space.layers]
    wrong = {s: (fixed + sum(per_layer[i][int(c)] for i, c in enumerate(s)), e.params)
             for s, e in table.items()
             if fixed + sum(per_layer[i][int(c)] for i, c in enumerate(s)) != e.params}
    assert not wrong, f"{len(wrong)} nets differ, e.g. {list(wrong.items())[:5]}"
    rng = random.Random(0)
    sample = ["00000000", "22222222", "11111111"] + rng.sample(sorted(table), 297)
    for s in sample:
        real = n_params(from_bench_string(space, s).build())
        assert real == fixed + sum(per_layer[i][int(c)] for i, c in enumerate(s)) == table[s].params


@needs_table
def test_macs_equal_the_tables_flops(space, table):
    """The table's ``flops`` are multiply-accumulates of the convs and the linear layer (BN,
    ReLU, residual adds and pooling not counted), the same as ``count_macs``: equal exactly."""
    rng = random.Random(1)
    for s in ["00000000", "22222222", "11111111", "20000000", "01201122", "02020202"] \
            + rng.sample(sorted(table), 6):
        assert count_macs(from_bench_string(space, s).build(), (3, 32, 32)) == table[s].flops, s


@needs_table
def test_the_table_reads_as_entries(table):
    e = table["22222222"]
    assert len(table) == 6561 and len(e.test_acc) == 3
    assert e.mean_acc == pytest.approx(sum(e.test_acc) / 3) and e.params == 2932586
    assert min(t.mean_acc for t in table.values()) > 40 and max(t.mean_acc for t in table.values()) < 94


def test_bad_tables_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_bench(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"00000000": {"test_acc": [1, 2, 3], "mean_acc": 2, "std": 1}}')
    with pytest.raises(UserError, match="malformed") as e:
        load_bench(bad)
    assert "\n" not in str(e.value)
    bad.write_text('{"0000000x": {"test_acc": [1], "mean_acc": 1, "std": 0, "params": 1, "flops": 1}}')
    with pytest.raises(UserError, match="malformed"):
        load_bench(bad)


def test_projection_and_identity_have_latency_keys_and_modules(space):
    keys = LatencyTable().required_keys(space)
    for k in ("skip:in32:out64:s2:hw32", "skip:in64:out128:s2:hw16", "skip:in128:out256:s2:hw8",
              "skip:in64:out64:s1:hw16", "mbconv:k5:e6:in128:out256:s2:hw8"):
        assert k in keys
    modules = {k: m for k, m, _ in space_modules(space)}
    assert set(keys) <= set(modules)
    proj = modules["skip:in32:out64:s2:hw32"]
    assert [type(m) for m in proj] == [nn.Conv2d, nn.BatchNorm2d]
    assert "skip" not in reference_arch(space).ops  # the drift reference computes


def test_profile_measures_the_whole_space(space):
    table = profile_space(space, proto=Protocol(threads=1, warmup=1, repeats=2), calibrate=4)
    table.check_covers(space)
    assert table.ms("skip:in32:out64:s2:hw32") >= 0


@pytest.mark.parametrize("share", ["none", "full"])
def test_supernet_trains_a_step(space, share):
    net = Supernet(space, share_weights=share)
    assert nn.ReLU6 not in {type(m) for m in net.modules()}
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    for idx in ([0] * 8, [1] * 8, [2] * 8, [2, 0, 1, 0, 2, 1, 0, 2]):
        for m, i in zip(net.mixed, idx):
            m.set_active([i])
        net.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        assert net.stem[0].weight.grad is not None


def test_quick_search_finds_a_bench_net(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    space = bench_space()
    rng = np.random.default_rng(0)
    y = np.arange(200) % 10
    x = rng.integers(0, 60, (200, 3, 32, 32))
    for c in range(10):  # class c: a bright band at rows 3c..3c+2
        x[y == c, :, 3 * c:3 * c + 3, :] += 150
    data = (torch.from_numpy(x.astype(np.uint8)), torch.from_numpy(y.astype(np.int64)))
    found = directnas.search(space, data, target_latency="1.5x", table=fake_table(space),
                             quick=True, device="cpu", seed=0, threads=1, max_steps=3,
                             batch_size=16, valid_size=40)
    s = to_bench_string(found.arch)
    assert len(s) == 8 and set(s) <= set("012")
    assert from_bench_string(space, s).ops == found.arch.ops

"""The fbnet-cifar100 preset: HW-NAS-Bench's CIFAR-100 layer table, `skip` on every layer."""

import pytest
import torch
import yaml

from directnas.errors import UserError
from directnas.latency.fit import FBNET_OPS, arch_from_op_indices, op_indices
from directnas.nas.supernet import Supernet
from directnas.space.arch import Arch
from directnas.space.ops import ZERO, build_op
from directnas.space.space import SearchSpace, load_space, op_key

torch.set_num_threads(1)

# (c_in, c_out, stride, hw_in) of the 22 layers: HW-NAS-Bench fbnet cifar100 (stem 16 ch, s1)
WIDTHS, DEPTHS, STRIDES = [16, 24, 32, 64, 112, 184, 352], [1, 4, 4, 4, 4, 4, 1], [1, 1, 2, 2, 1, 2, 1]


def expected_layers():
    out, c, hw = [], 16, 32
    for w, d, s in zip(WIDTHS, DEPTHS, STRIDES):
        for j in range(d):
            st = s if j == 0 else 1
            out.append((c, w, st, hw))
            c, hw = w, hw // st
    return out


def test_layer_table_matches_hw_nas_bench():
    space = load_space("fbnet-cifar100")
    assert (space.input_size, space.input_channels, space.num_classes) == (32, 3, 100)
    assert space.stem_channels == 16 and space.stem_stride == 1 and space.head_channels == 1504
    assert [(l.c_in, l.c_out, l.stride, l.hw_in) for l in space.layers] == expected_layers()
    assert len(space.layers) == 22
    for layer in space.layers:
        assert layer.candidates == FBNET_OPS  # op_idx_list order of HW-NAS-Bench / HELP
    assert space.num_archs() == 9 ** 22
    assert SearchSpace.from_dict(space.to_dict()) == space  # round trip keeps skip_everywhere


def test_skip_is_identity_or_projection():
    ident = build_op("skip", 24, 24, 1, residual=True)
    x = torch.randn(2, 24, 8, 8)
    assert torch.equal(ident(x), x)
    assert torch.equal(build_op("skip", 24, 24, 1, residual=False)(x), torch.zeros_like(x))
    proj = build_op("skip", 24, 32, 2, residual=False)
    assert proj(x).shape == (2, 32, 4, 4)
    conv = proj[0]
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert op_key("skip", 24, 32, 2, 8) == "skip:in24:out32:s2:hw8"


def test_csv_row_maps_to_arch_and_builds():
    space = load_space("fbnet-cifar100")
    row = [7, 8, 1, 8, 4, 8, 8, 8, 7, 4, 1, 4, 7, 3, 2, 7, 3, 2, 4, 2, 4, 5]  # arch 0 of the CSV
    arch = arch_from_op_indices(space, row)
    assert arch.ops[:3] == ["k5_e6", "skip", "k3_e1_g2"] and op_indices(arch) == row
    net = arch.build().eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    all_skip = Arch(space, ["skip"] * 22).build().eval()
    assert all_skip(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(UserError):
        arch_from_op_indices(space, row[:-1])
    with pytest.raises(UserError):
        arch_from_op_indices(space, [9] + row[1:])


def test_supernet_skip_path_keeps_the_input():
    space = load_space("fbnet-cifar100")
    net = Supernet(space).eval()
    m = net.mixed[2]  # 24 -> 24, stride 1: skip must give x, not 2x
    m.set_active([FBNET_OPS.index("skip")])
    x = torch.randn(1, 24, 32, 32)
    assert torch.equal(m(x), x)
    for mixed in net.mixed:
        mixed.set_active([FBNET_OPS.index("skip")])
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 100)


def test_other_spaces_unchanged(tiny_space_dict):
    """Without skip_everywhere, `skip` still means `zero` and the keys are as before."""
    d = dict(tiny_space_dict, candidates=["k3_e3", "skip"], allow_zero=False)
    space = SearchSpace.from_dict(d)
    assert all("skip" not in l.candidates for l in space.layers)
    assert ZERO in space.layers[1].candidates and "skip_everywhere" not in space.to_dict()
    assert "skip_everywhere" not in load_space("cifar").to_dict()
    with pytest.raises(UserError):
        SearchSpace.from_dict(dict(tiny_space_dict, skip_everywhere="yes"))
    d2 = yaml.safe_load(yaml.safe_dump(dict(tiny_space_dict, skip_everywhere=True)))
    s2 = SearchSpace.from_dict(d2)
    assert all(l.candidates[-2:] == ("skip", ZERO) or l.candidates[-1] == "skip" for l in s2.layers)

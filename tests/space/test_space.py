import pytest
import torch

from directnas.errors import UserError
from directnas.space.arch import Arch, uniform_arch
from directnas.space.ops import ZERO, parse_op
from directnas.space.space import SearchSpace, load_space, preset_names


@pytest.mark.parametrize("name", preset_names())
def test_presets_load_and_zero_only_where_shape_kept(name):
    space = load_space(name)
    assert space.layers
    for layer in space.layers:
        if ZERO in layer.candidates:
            assert layer.residual, layer
        for op in layer.candidates:
            parse_op(op)


def test_imagenet_mobile_has_the_papers_21_choice_blocks():
    space = load_space("imagenet-mobile")
    assert len(space.layers) == 21
    assert sum(ZERO in l.candidates for l in space.layers) == 15
    assert space.last_hw == 7 and space.last_channels == 320


def test_fashion_mnist_forward_shape():
    space = load_space("fashion-mnist")
    net = uniform_arch(space, "k3_e3").build()
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_arch_json_round_trip_and_build(tmp_path, tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    ops = [l.candidates[-1] for l in space.layers]
    arch = Arch(space, ops, {"predicted_latency_ms": 1.0})
    arch.save(tmp_path / "a.json")
    back = Arch.load(tmp_path / "a.json")
    assert back.ops == ops and back.space == space and back.meta["predicted_latency_ms"] == 1.0
    net = back.build()
    assert net(torch.zeros(3, 1, 16, 16)).shape == (3, 4)
    assert len(net.blocks) == sum(op != ZERO for op in ops)


def test_arch_that_does_not_fit_is_refused(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    with pytest.raises(UserError, match="not a candidate"):
        Arch(space, [ZERO] * len(space.layers))  # zero on the first layer of a stage
    with pytest.raises(UserError, match="searchable layers"):
        Arch(space, ["k3_e3"])


@pytest.mark.parametrize("mutate, msg", [
    (lambda d: d.update(bogus=1), "unknown key"),
    (lambda d: d["stages"][0].update(stride=64), "vanish"),
    (lambda d: d.update(candidates=["k4_e3"]), "kernel must be odd"),
    (lambda d: d.update(candidates=["conv9"]), "unknown op"),
    (lambda d: d.pop("stem"), "missing required key"),
    (lambda d: d["stages"][0].update(depth=0), "positive integer"),
])
def test_bad_spaces_give_one_line_errors(tiny_space_dict, mutate, msg):
    mutate(tiny_space_dict)
    with pytest.raises(UserError, match=msg) as e:
        SearchSpace.from_dict(tiny_space_dict)
    assert "\n" not in str(e.value)


def test_net_registers_layers_in_forward_order():
    from directnas.compression.finetune import weight_layers
    from directnas.space.arch import uniform_arch
    from directnas.space.space import load_space
    net = uniform_arch(load_space("fashion-mnist"), "k3_e3").build()
    names = [n for n, _ in weight_layers(net)]
    assert names[0].startswith("stem") and names[-1] == "head.classifier"
    assert max(i for i, n in enumerate(names) if n.startswith("blocks")) < names.index("head.conv.0")

"""MobileNetV3-small/large in outline, from the spaces' own inverted residuals: the paper's
bneck tables at 224 px (no SE, no h-swish, integer expansions), adapted to small inputs, with the
space's activation."""

import pytest
import torch

from directnas.models.registry import build_named, model_names
from directnas.models.zoo.mobilenetv3 import BNECKS, mobilenetv3_arch
from directnas.space.ops import MBConv
from directnas.training.train_net import count_macs


def test_registered_and_built_from_the_same_ops():
    assert {"mobilenetv3-small", "mobilenetv3-large"} <= set(model_names())
    net = build_named("mobilenetv3-large", input_shape=(1, 28, 28), num_classes=10)
    blocks = [m for m in net.modules() if isinstance(m, MBConv)]
    assert len(blocks) == len(BNECKS["large"]["blocks"])  # the first block and 14 searchable
    assert not any("SqueezeExcitation" in type(m).__name__ or "Hardswish" in type(m).__name__
                   for m in net.modules())


@pytest.mark.parametrize("variant, mmacs, ops", [
    ("small", 56.0, ["k3_e5", "k3_e4", "k5_e4", "k5_e6", "k5_e6", "k5_e3", "k5_e3", "k5_e6",
                     "k5_e6", "k5_e6"]),
    ("large", 213.3, ["k3_e4", "k3_e3", "k5_e3", "k5_e3", "k5_e3", "k3_e6", "k3_e3", "k3_e2",
                      "k3_e2", "k3_e6", "k3_e6", "k5_e6", "k5_e6", "k5_e6"])])
def test_imagenet_size_follows_the_bneck_tables(variant, mmacs, ops):
    arch = mobilenetv3_arch(variant, input_shape=(3, 224, 224), num_classes=1000)
    assert arch.ops == ops and arch.space.last_hw == 7  # overall stride 32
    # the paper's 56 / 219 MMACs include squeeze-and-excitation and the 1280/1024 FC layer
    assert count_macs(arch.build(), (3, 224, 224)) / 1e6 == pytest.approx(mmacs, abs=0.5)


@pytest.mark.parametrize("variant", ["small", "large"])
def test_small_inputs_and_the_space_activation(variant):
    arch = mobilenetv3_arch(variant, input_shape=(1, 28, 28), num_classes=10, activation="relu")
    space = arch.space
    assert space.stem_stride == 1 and space.last_hw == 4 and space.activation == "relu"
    net = arch.build().eval()
    assert not any(isinstance(m, torch.nn.ReLU6) for m in net.modules())
    with torch.no_grad():
        assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)

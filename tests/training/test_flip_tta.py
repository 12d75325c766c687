"""Flip test-time augmentation: FlipAverage and evaluate(flip_tta=True)."""

import torch
from torch import nn

from directnas.training.train_net import FlipAverage, evaluate


def test_flip_average_is_the_mean_softmax_of_image_and_mirror():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 5))  # not mirror-invariant
    x = torch.randn(64, 1, 6, 6)
    with torch.no_grad():
        want = (net(x).softmax(1) + net(x.flip(3)).softmax(1)) / 2
        got = FlipAverage(net)(x)
    assert torch.allclose(got.exp(), want, atol=1e-6)
    # labels that only the flip-averaged prediction gets all right
    y = want.argmax(1)
    plain = evaluate(net, [(x[:32], y[:32]), (x[32:], y[32:])])
    flip = evaluate(net, [(x[:32], y[:32]), (x[32:], y[32:])], flip_tta=True)
    assert flip["accuracy"] == 1.0 and plain["accuracy"] < 1.0
    assert abs(flip["loss"] + want.gather(1, y[:, None]).log().mean().item()) < 1e-5
    assert net.training  # evaluate restores train mode


def test_flip_average_changes_nothing_for_a_mirror_invariant_net():
    net = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 3))
    x, y = torch.randn(16, 1, 5, 5), torch.randint(0, 3, (16,))
    a, b = evaluate(net, [(x, y)]), evaluate(net, [(x, y)], flip_tta=True)
    assert a["accuracy"] == b["accuracy"] and abs(a["loss"] - b["loss"]) < 1e-5

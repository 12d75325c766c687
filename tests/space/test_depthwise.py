"""The matmul training path of DepthwiseConv2d computes the same convolution and gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from directnas.space import depthwise
from directnas.space.depthwise import DepthwiseConv2d, depthwise_as_matmul, tap_index
from directnas.space.ops import MBConv


@pytest.mark.parametrize("hw,k,stride", [(4, 7, 1), (4, 5, 1), (4, 3, 1), (2, 3, 1), (3, 5, 2),
                                          (7, 7, 2), (5, 3, 2), (1, 7, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_matmul_path_matches_conv2d_values_and_gradients(hw: int, k: int, stride: int,
                                                         channels_last: bool, bias: bool) -> None:
    g = torch.Generator().manual_seed(hw * 100 + k * 10 + stride)
    c = 6
    x = torch.randn(3, c, hw, hw, generator=g)
    w = torch.randn(c, 1, k, k, generator=g)
    b = torch.randn(c, generator=g) if bias else None
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    b1 = b.clone().requires_grad_() if b is not None else None
    b2 = b.clone().requires_grad_() if b is not None else None
    ref = F.conv2d(x1, w1, b1, stride, k // 2, groups=c)
    out = depthwise_as_matmul(x2, w2, b2, stride, k // 2)
    assert out.shape == ref.shape
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last and hw > 1
                             else torch.contiguous_format)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    gy = torch.randn(ref.shape, generator=g)
    (ref * gy).sum().backward()
    (out * gy).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w2.grad, w1.grad, rtol=1e-5, atol=1e-5)
    if bias:
        torch.testing.assert_close(b2.grad, b1.grad, rtol=1e-5, atol=1e-5)


def test_tap_index_marks_padding_taps() -> None:
    idx, oh, ow = tap_index(2, 2, 3, 1, 1)
    assert (oh, ow) == (2, 2)
    # input (0,0) feeds output (0,0) through the centre tap 4 and output (1,1) through tap 0
    assert idx[0, 0] == 4 and idx[0, 3] == 0
    idx, _, _ = tap_index(1, 1, 7, 1, 3)
    assert idx.tolist() == [[24]]  # a 1x1 map only ever meets the centre tap


def _count_matmul_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = depthwise.depthwise_as_matmul

    def spy(*a: object, **kw: object) -> torch.Tensor:
        calls.append(1)
        return real(*a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(depthwise, "depthwise_as_matmul", spy)
    return calls


def test_only_training_with_an_overhanging_kernel_takes_the_matmul_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_matmul_calls(monkeypatch)
    conv = DepthwiseConv2d(8, 7)
    small, large = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 9, 9)
    conv.train()
    conv(small)
    assert len(calls) == 1
    conv(large)  # kernel fits in the map: oneDNN is fast there
    assert len(calls) == 1
    with torch.no_grad():
        conv(small)
    conv.eval()
    conv(small)  # what is timed and exported is the plain convolution
    assert len(calls) == 1


def test_depthwise_module_is_a_plain_conv2d_to_its_users() -> None:
    conv = DepthwiseConv2d(8, 5, 2)
    plain = nn.Conv2d(8, 8, 5, 2, 2, groups=8, bias=False)
    assert isinstance(conv, nn.Conv2d)
    assert conv.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(conv.state_dict())
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(conv.eval()(x), plain(x))


def test_mbconv_trains_the_same_with_either_path() -> None:
    torch.manual_seed(0)
    block = MBConv(16, 16, kernel=7, expand=3, stride=1, residual=True).train()
    assert isinstance(block.depthwise[0], DepthwiseConv2d)
    x = torch.randn(4, 16, 4, 4)
    fast = torch.autograd.grad(block(x).square().sum(), list(block.parameters()))
    block.depthwise[0].__class__ = nn.Conv2d  # the stock module, same parameters
    slow = torch.autograd.grad(block(x).square().sum(), list(block.parameters()))
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_matmul_path_is_a_constructor_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    """``matmul_path=False`` keeps oneDNN's convolution in training, for the module and for the
    nets built from a space; the default is the matmul path."""
    from directnas.nas.supernet import Supernet
    from directnas.space.arch import uniform_arch
    from directnas.space.space import SearchSpace
    from helpers import TINY_SPACE

    calls = _count_matmul_calls(monkeypatch)
    small = torch.randn(2, 8, 4, 4)
    DepthwiseConv2d(8, 7, matmul_path=False).train()(small)
    assert not calls
    DepthwiseConv2d(8, 7).train()(small)
    assert len(calls) == 1

    space = SearchSpace.from_dict({**TINY_SPACE, "candidates": ["k7_e3", "k5_e3"],
                                   "allow_zero": False})
    x = torch.randn(2, 1, 16, 16)  # the last stage runs on 4x4 maps: k7 overhangs them
    for build in (lambda on: uniform_arch(space, "k7_e3").build(matmul_path=on),
                  lambda on: Supernet(space, matmul_path=on),
                  lambda on: Supernet(space, share_weights="full", matmul_path=on)):
        calls.clear()
        build(False).train()(x)
        assert not calls
        build(True).train()(x)
        assert calls

"""Depthwise convolution with a fast CPU training path for kernels that overhang the feature map.

On this CPU, oneDNN's depthwise backward is pathological when the kernel is larger than the map
(k5/k7 on the 4x4 maps of the last stages): a 7x7 depthwise over 576 channels at 4x4 costs 128 ms
per training step at batch 128, a third of the whole step of a searched net.  There every output
sees (almost) every input, so the layer is, per channel, a small dense map of the H*W inputs to the
OH*OW outputs whose entries are kernel taps.  Written as one batched matmul over channels it costs
19 ms for the same forward and backward (``benchmarks/depthwise_step.py``).

Only the training forward takes that path (CPU, grad enabled).  Evaluation, latency measurement and
export run the ordinary convolution, so what is timed and shipped is the standard op, and the
module is an ``nn.Conv2d`` with the same parameters and state-dict keys.  The path is on by
default; ``matmul_path=False`` (a constructor argument of the module and of the op builders
that make it) keeps oneDNN's convolution in training too.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

@functools.lru_cache(maxsize=128)
def tap_index(h: int, w: int, k: int, stride: int, pad: int) -> tuple[torch.Tensor, int, int]:
    """(H*W, OH*OW) index of the kernel tap linking input p to output q; ``k*k`` where none does."""
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    a = torch.arange(h).view(h, 1, 1, 1) - torch.arange(oh).view(1, 1, oh, 1) * stride + pad
    b = torch.arange(w).view(1, w, 1, 1) - torch.arange(ow).view(1, 1, 1, ow) * stride + pad
    valid = (a >= 0) & (a < k) & (b >= 0) & (b < k)
    idx = torch.where(valid, a * k + b, torch.full_like(a * b, k * k))
    return idx.reshape(h * w, oh * ow), oh, ow


class _ChannelMatmul(torch.autograd.Function):
    """bmm whose backward makes the incoming gradient contiguous first: a strided gradient makes
    CPU bmm copy every batch slice on its own, which costs more than the product itself."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx,  # type: ignore[override]
                xt: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        # (C, N, P) @ (C, P, Q) -> (C, N, Q)
        ctx.save_for_backward(xt, m)
        return torch.bmm(xt, m)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx,  # type: ignore[override]
                 gy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xt, m = ctx.saved_tensors  # type: ignore[attr-defined]
        gy = gy.contiguous()
        return torch.bmm(gy, m.transpose(1, 2)), torch.bmm(xt.transpose(1, 2), gy)


def depthwise_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        stride: int, pad: int) -> torch.Tensor:
    """The depthwise convolution of ``x`` (N, C, H, W) by ``weight`` (C, 1, k, k) as a matmul."""
    n, c, h, w = x.shape
    k = weight.shape[-1]
    idx, oh, ow = tap_index(h, w, k, stride, pad)
    taps = torch.cat([weight.reshape(c, k * k), weight.new_zeros(c, 1)], 1)
    m = taps[:, idx]  # (C, H*W, OH*OW)
    xt = x.permute(1, 0, 2, 3).reshape(c, n, h * w).contiguous()
    y = _ChannelMatmul.apply(xt, m).view(c, n, oh, ow).permute(1, 0, 2, 3)
    if bias is not None:
        y = y + bias.view(1, c, 1, 1)
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    return y.contiguous(memory_format=fmt)


def _use_matmul(x: torch.Tensor, k: int, training: bool, enabled: bool) -> bool:
    return (enabled and training and k > min(x.shape[-2], x.shape[-1])
            and x.device.type == "cpu" and torch.is_grad_enabled()
            and not torch.jit.is_scripting() and not torch.onnx.is_in_onnx_export())


def depthwise(x: torch.Tensor, weight: torch.Tensor, stride: int, *, training: bool,
              matmul_path: bool = True) -> torch.Tensor:
    """Depthwise conv of ``x`` by ``weight`` (C, 1, k, k), padding k // 2, no bias; the matmul
    path under the same conditions as ``DepthwiseConv2d`` (a functional form for sliced weights)."""
    k = weight.shape[-1]
    if _use_matmul(x, k, training, matmul_path):
        return depthwise_as_matmul(x, weight, None, stride, k // 2)
    return torch.nn.functional.conv2d(x, weight, None, stride, k // 2, groups=weight.shape[0])


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(c, c, k, stride, k // 2, groups=c)`` that trains on the matmul path when the
    kernel overhangs the map on CPU (see the module docstring); ``matmul_path=False``: never."""

    def __init__(self, channels: int, kernel: int, stride: int = 1, *, bias: bool = False,
                 matmul_path: bool = True) -> None:
        super().__init__(channels, channels, kernel, stride, kernel // 2, groups=channels,
                         bias=bias)
        self.matmul_path = matmul_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _use_matmul(x, self.kernel_size[0], self.training, self.matmul_path):
            return depthwise_as_matmul(x, self.weight, self.bias, self.stride[0], self.padding[0])
        return super().forward(x)

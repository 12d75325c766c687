"""Building blocks: one op = one nn.Module.

Op names are short data strings:  ``k{kernel}_e{expand}[_g{groups}]`` is an inverted-residual
(MBConv) block with a depthwise ``kernel x kernel`` conv, expansion ratio ``expand`` and
``groups`` groups in its 1x1 convs; ``zero`` skips the layer (only where the layer keeps its
shape, so the residual shortcut carries the input through).
``skip`` (only in spaces with ``skip_everywhere: true``, e.g. FBNet) is allowed on every layer:
the identity where the layer keeps its shape, a strided 1x1 conv + BN projection otherwise.

The activation after each BN that has one (expand, depthwise, stem, head conv) is ``relu6`` by
default; every constructor takes ``activation`` (a name in ``ACTIVATIONS``) so a space can ask for
another one (``activation: relu`` in its YAML).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from directnas.errors import UserError
from directnas.space.depthwise import DepthwiseConv2d

ZERO = "zero"
SKIP = "skip"
_OP_RE = re.compile(r"^k(\d+)_e(\d+)(?:_g(\d+))?$")
#: Activation names a space may choose -> module class (``relu6``: MobileNetV2's, the default).
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu6": nn.ReLU6, "relu": nn.ReLU}
DEFAULT_ACTIVATION = "relu6"


def make_activation(name: str = DEFAULT_ACTIVATION) -> nn.Module:
    """The in-place activation module called ``name`` (a key of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}: use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name](inplace=True)


@dataclass(frozen=True)
class OpSpec:
    """A decoded op name."""

    kernel: int
    expand: int
    groups: int = 1

    @property
    def name(self) -> str:
        g = f"_g{self.groups}" if self.groups != 1 else ""
        return f"k{self.kernel}_e{self.expand}{g}"


def parse_op(name: str) -> OpSpec | None:
    """Decode an op name; ``None`` for ``zero``. Raises UserError on an unknown name."""
    if name in (ZERO, "skip"):
        return None
    m = _OP_RE.match(name)
    if m is None:
        raise UserError(
            f"unknown op {name!r}: use 'zero' or k<kernel>_e<expand>[_g<groups>], e.g. k3_e6"
        )
    k, e, g = int(m[1]), int(m[2]), int(m[3] or 1)
    if k % 2 == 0 or k < 1 or e < 1 or g < 1:
        raise UserError(f"op {name!r} is invalid: kernel must be odd, expand and groups >= 1")
    return OpSpec(k, e, g)


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, *, groups: int = 1,
            act: bool = True, activation: str = DEFAULT_ACTIVATION,
            matmul_path: bool = True) -> nn.Sequential:
    """Conv -> BN (-> activation); a depthwise conv is a ``DepthwiseConv2d`` (``matmul_path``:
    its CPU training path for kernels that overhang the map)."""
    conv = DepthwiseConv2d(c_in, kernel, stride, matmul_path=matmul_path) \
        if groups == c_in == c_out > 1 and kernel > 1 \
        else nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(c_out)]
    if act:
        layers.append(make_activation(activation))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand -> kxk depthwise -> 1x1 project (+ shortcut)."""

    def __init__(self, c_in: int, c_out: int, *, kernel: int, expand: int, stride: int,
                 groups: int = 1, residual: bool, activation: str = DEFAULT_ACTIVATION,
                 matmul_path: bool = True) -> None:
        super().__init__()
        mid = c_in * expand
        if c_in % groups or mid % groups or c_out % groups:
            raise UserError(f"channels {c_in}->{mid}->{c_out} are not divisible by groups={groups}")
        self.expand = conv_bn(c_in, mid, 1, groups=groups, activation=activation) \
            if expand != 1 else nn.Identity()
        self.depthwise = conv_bn(mid, mid, kernel, stride, groups=mid, activation=activation,
                                 matmul_path=matmul_path)
        self.project = conv_bn(mid, c_out, 1, groups=groups, act=False)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class ZeroPath(nn.Module):
    """The residual branch of ``skip`` on a shape-keeping layer: 0, so ``x + branch = x``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> zeros like x
        return torch.zeros_like(x)


def build_skip(c_in: int, c_out: int, stride: int, *, residual: bool) -> nn.Module:
    """FBNet's ``skip``: identity if the shape is kept (its residual branch is 0: callers that
    add the shortcut themselves pass ``residual=False``), else a 1x1 conv + BN projection."""
    if c_in == c_out and stride == 1:
        return nn.Identity() if residual else ZeroPath()
    return conv_bn(c_in, c_out, 1, stride, act=False)


def build_op(name: str, c_in: int, c_out: int, stride: int, *, residual: bool,
             activation: str = DEFAULT_ACTIVATION, matmul_path: bool = True) -> nn.Module:
    """The module for op ``name`` on a layer; ``zero`` gives None (the caller skips it).
    ``matmul_path``: the depthwise conv's CPU training path (``space.depthwise``)."""
    if name == SKIP:
        return build_skip(c_in, c_out, stride, residual=residual)
    spec = parse_op(name)
    if spec is None:
        raise ValueError("zero has no module; callers skip the layer")
    return MBConv(c_in, c_out, kernel=spec.kernel, expand=spec.expand, stride=stride,
                  groups=spec.groups, residual=residual, activation=activation,
                  matmul_path=matmul_path)


class Head(nn.Module):
    """1x1 conv -> global average pool -> dropout -> linear classifier."""

    def __init__(self, c_in: int, c_head: int, num_classes: int, dropout: float = 0.0, *,
                 activation: str = DEFAULT_ACTIVATION) -> None:
        super().__init__()
        self.conv = conv_bn(c_in, c_head, 1, activation=activation) if c_head > 0 else nn.Identity()
        width = c_head if c_head > 0 else c_in
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        x = self.pool(self.conv(x)).flatten(1)
        return self.classifier(self.dropout(x))

"""One layer's MBConv candidates as slices of one set of weights (weight-shared paths).

A layer of the supernet offers e.g. ``k3_e3 ... k7_e6``.  With separate paths every candidate
owns its weights and a weight step trains the one sampled path only, so after the short warm-up
each path has seen about 1/7 of the steps and the supernet cannot tell good paths from bad ones
(22-32 % validation accuracy after the warm-up; once alpha concentrates, the other
nets of a search-vs-random comparison score 34-64 % inside the supernet against 72-75 % for the
picked one, so alpha's early, noise-driven choice is never revisited).

Here the layer holds the weights of its largest candidate (expansion ``e_max``, kernel
``k_max``), and candidate ``k{k}_e{e}`` runs

* the first ``c_in * e`` output channels of the 1x1 expand conv,
* the centre ``k x k`` taps of those channels' ``k_max x k_max`` depthwise kernels,
* the first ``c_in * e`` input channels of the 1x1 project conv,

the nested "superkernel" of Single-Path NAS (Stamoulis et al., 2019) and the elastic kernel /
width of Once-for-All (Cai et al., 2020; without its kernel transform matrices).  Every weight
step trains weights that every candidate uses.  BatchNorm is private per candidate (its
statistics differ with the slice).  The standalone net trained afterwards is built from the op
names as before: sharing changes the search, not the nets it hands over.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from directnas.space.depthwise import depthwise
from directnas.space.ops import DEFAULT_ACTIVATION, OpSpec, make_activation


SHARING = ("none", "kernel", "full")


def share_groups(specs: list[OpSpec | None], mode: str) -> list[list[int]]:
    """Indices of the candidates that share one block, per block (groups of >= 2).

    ``none``: no sharing.  ``kernel``: the candidates of one expansion ratio share one block
    (nested kernels; e3 and e6 keep their own weights).  ``full``: every plain MBConv shares one
    block (nested kernels and channels).  Grouped-conv candidates never share.
    """
    if mode not in SHARING:
        raise ValueError(f"weight sharing {mode!r} is not one of {SHARING}")
    if mode == "none":
        return []
    plain = [i for i, s in enumerate(specs) if s is not None and s.groups == 1]
    if mode == "full":
        return [plain] if len(plain) >= 2 else []
    by_expand: dict[int, list[int]] = {}
    for i in plain:
        by_expand.setdefault(specs[i].expand, []).append(i)  # type: ignore[union-attr]
    return [g for g in by_expand.values() if len(g) >= 2]


class SharedMBConv(nn.Module):
    """The weights of a layer's MBConv candidates; ``forward(x, j)`` runs candidate ``specs[j]``."""

    def __init__(self, specs: list[OpSpec], c_in: int, c_out: int, stride: int, *,
                 activation: str = DEFAULT_ACTIVATION, matmul_path: bool = True) -> None:
        super().__init__()
        if any(s.groups != 1 for s in specs):
            raise ValueError("grouped 1x1 convs do not share weights")
        self.act = make_activation(activation)  # no weights: one module serves every slice
        self.specs, self.stride, self.matmul_path = specs, stride, matmul_path
        self.k_max = max(s.kernel for s in specs)
        mid = c_in * max(s.expand for s in specs)
        has_expand = any(s.expand != 1 for s in specs)
        self.expand_w = nn.Parameter(torch.empty(mid, c_in, 1, 1)) if has_expand else None
        self.dw_w = nn.Parameter(torch.empty(mid, 1, self.k_max, self.k_max))
        self.proj_w = nn.Parameter(torch.empty(c_out, mid, 1, 1))
        for w in (self.expand_w, self.dw_w, self.proj_w):
            if w is not None:  # nn.Conv2d's default initialisation
                nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.bn = nn.ModuleList(
            nn.ModuleList([nn.BatchNorm2d(c_in * s.expand) if s.expand != 1 else nn.Identity(),
                           nn.BatchNorm2d(c_in * s.expand), nn.BatchNorm2d(c_out)])
            for s in specs)

    def forward(self, x: torch.Tensor, j: int) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H/s, W/s)
        s, (bn_e, bn_d, bn_p) = self.specs[j], self.bn[j]
        mid = x.shape[1] * s.expand
        h = x
        if s.expand != 1:
            assert self.expand_w is not None
            h = self.act(bn_e(F.conv2d(x, self.expand_w[:mid])))
        a = (self.k_max - s.kernel) // 2
        w = self.dw_w[:mid, :, a:a + s.kernel, a:a + s.kernel]
        h = self.act(bn_d(depthwise(h, w, self.stride, training=self.training,
                                    matmul_path=self.matmul_path)))
        return bn_p(F.conv2d(h, self.proj_w[:, :mid]))


class SharedPath(nn.Module):
    """Candidate ``j`` of a ``SharedMBConv`` as a module of its own (no weights: the MixedOp
    registers the shared block once; this keeps a reference for calling it)."""

    def __init__(self, shared: SharedMBConv, j: int) -> None:
        super().__init__()
        self._shared = (shared,)  # a tuple: not registered again as a submodule
        self.j = j

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._shared[0](x, self.j)

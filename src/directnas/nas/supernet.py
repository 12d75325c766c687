"""Supernet: the space's stem/first block/head with a MixedOp on every searchable layer.

Every MixedOp follows one contract (cf. once-for-all's dynamic layers):
  * ``alpha``: architecture parameters, ``probs()`` = softmax(alpha);
  * ``set_active(indices, gates=None, weights=None)``: which candidate paths the next forward
    runs; with ``gates`` (a one-hot leaf tensor that requires grad) the output is
    ``sum_k gates[k] * path_k(x)`` so ``gates.grad`` is dL/dg (path-level binarization);
    with ``weights`` it is a soft weighted sum (DARTS / Gumbel);
  * ``latency_ms``: the table's latency of every candidate at this layer's shape;
  * ``derive()``: the most probable op name.
The mode of a step is passed to each op explicitly by the strategy; there is no global switch.
"""

from __future__ import annotations

import torch
from torch import nn

from directnas.space.arch import Arch, build_fixed
from directnas.nas.superkernel import SharedMBConv, SharedPath, share_groups
from directnas.space.ops import DEFAULT_ACTIVATION, ZERO, build_op, parse_op
from directnas.space.space import LayerSpec, SearchSpace


class MixedOp(nn.Module):
    def __init__(self, layer: LayerSpec, *, alpha_std: float = 1e-3,
                 share_weights: str = "none", activation: str = DEFAULT_ACTIVATION,
                 matmul_path: bool = True) -> None:
        super().__init__()
        self.layer = layer
        self.names = list(layer.candidates)
        self.zero_index = self.names.index(ZERO) if ZERO in self.names else -1
        specs = [None if n in (ZERO, "skip") else parse_op(n) for n in self.names]
        # weight sharing (search/superkernel.py): groups of MBConv candidates are slices of one block
        groups = share_groups(specs, share_weights)
        self.shared = nn.ModuleList(SharedMBConv([specs[i] for i in g], layer.c_in, layer.c_out,  # type: ignore[misc]
                                                 layer.stride, activation=activation,
                                                 matmul_path=matmul_path)
                                    for g in groups)
        where = {i: (b, j) for b, g in enumerate(groups) for j, i in enumerate(g)}
        # Zero has no module: an nn.Identity placeholder keeps ModuleList indices aligned.
        self.paths = nn.ModuleList(
            nn.Identity() if n == ZERO else
            SharedPath(self.shared[where[i][0]], where[i][1]) if i in where else
            build_op(n, layer.c_in, layer.c_out, layer.stride, residual=False,
                     activation=activation, matmul_path=matmul_path)
            for i, n in enumerate(self.names))
        self.alpha = nn.Parameter(torch.randn(len(self.names)) * alpha_std)
        self.residual = layer.residual
        self.register_buffer("latency_ms", torch.zeros(len(self.names)), persistent=False)
        self.active: list[int] = [0]
        self.gates: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None

    def probs(self) -> torch.Tensor:  # (N,)
        return torch.softmax(self.alpha, dim=0)

    def set_active(self, indices: list[int], *, gates: torch.Tensor | None = None,
                   weights: torch.Tensor | None = None) -> None:
        self.active, self.gates, self.weights = indices, gates, weights

    def _path(self, i: int, x: torch.Tensor) -> torch.Tensor | None:
        return None if i == self.zero_index else self.paths[i](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H', W')
        coeffs = self.gates if self.gates is not None else self.weights
        if coeffs is None:  # one sampled path, nothing else in memory
            y = self._path(self.active[0], x)
        else:
            y = None
            for k, i in enumerate(self.active):
                # A zero path contributes 0 to the sum, so dL/dg_zero = 0 exactly; its alpha
                # still moves through the softmax coupling in the estimator.
                o = self._path(i, x)
                if o is not None:
                    y = coeffs[k] * o if y is None else y + coeffs[k] * o
        if self.residual:
            return x if y is None else x + y
        if y is None:
            raise RuntimeError("zero op on a shape-changing layer")  # excluded by SearchSpace
        return y

    def derive(self) -> str:
        return self.names[int(torch.argmax(self.alpha.detach()))]

    def expected_latency(self) -> torch.Tensor:  # scalar, differentiable in alpha
        return (self.probs() * self.latency_ms).sum()


class Supernet(nn.Module):
    def __init__(self, space: SearchSpace, *, alpha_std: float = 1e-3,
                 share_weights: str = "none", matmul_path: bool = True) -> None:
        super().__init__()
        self.space = space
        self.stem, self.first, self.head = build_fixed(space, matmul_path=matmul_path)
        self.mixed = nn.ModuleList(MixedOp(l, alpha_std=alpha_std, share_weights=share_weights,
                                           activation=space.activation, matmul_path=matmul_path)
                                   for l in space.layers)
        self.register_buffer("fixed_latency_ms", torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        x = self.first(self.stem(x))
        for m in self.mixed:
            x = m(x)
        return self.head(x)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [m.alpha for m in self.mixed]

    def weight_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def set_latency(self, fixed_ms: float, per_layer_ms: list[list[float]]) -> None:
        self.fixed_latency_ms.fill_(fixed_ms)
        for m, lat in zip(self.mixed, per_layer_ms):
            m.latency_ms.copy_(torch.tensor(lat, dtype=torch.float32))

    def expected_latency(self) -> torch.Tensor:
        """E[LAT] = fixed + sum over layers of sum_j p_j * LUT[op_j] (differentiable in alpha)."""
        return self.fixed_latency_ms + sum(m.expected_latency() for m in self.mixed)

    def probs(self) -> list[list[float]]:
        return [m.probs().detach().tolist() for m in self.mixed]

    def derive(self) -> Arch:
        """Path-level pruning: keep each layer's most probable op (zero removes the layer)."""
        return Arch(self.space, [m.derive() for m in self.mixed])

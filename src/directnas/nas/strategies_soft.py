"""Soft strategies: every path runs, weighted (memory of all N paths in every step).

  * ``darts``: weights = softmax(alpha) in both steps (first-order DARTS); the weight step
    trains all paths at once.
  * ``gumbel`` (FBNet): weights = softmax((alpha + g) / tau), g ~ Gumbel(0, 1) drawn afresh
    per layer and step, in both steps; tau anneals exponentially from ``tau0`` to ``tau_end``
    over the run (FBNet: 5.0, times exp(-0.045) per epoch of 90 -> about 0.1 at the end).
The alpha step minimises objective(logits, y, E[LAT]) with E[LAT] from the table, as the
binary modes do.
"""

from __future__ import annotations

import math

import torch

from directnas.nas.strategies_base import FrozenWeights, Objective, set_argmax_paths
from directnas.nas.supernet import MixedOp, Supernet


def _soft_alpha_step(net: Supernet, x: torch.Tensor, y: torch.Tensor, *, objective: Objective,
                     optimizer: torch.optim.Optimizer, weights: list[torch.Tensor]) -> dict[str, float]:
    optimizer.zero_grad(set_to_none=False)
    with FrozenWeights(net):
        for m, w in zip(net.mixed, weights):
            m.set_active(list(range(len(m.names))), weights=w)
        loss, info = objective(net(x), y, net.expected_latency())
        loss.backward()
    optimizer.step()
    set_argmax_paths(net)
    info["loss"] = float(loss.detach())
    return info


class Darts:
    name = "darts"

    def prepare_weight_step(self, net: Supernet, gen: torch.Generator, *, warmup: bool) -> None:
        for m in net.mixed:
            m.set_active(list(range(len(m.names))), weights=m.probs().detach())

    def alpha_step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, *,
                   objective: Objective, optimizer: torch.optim.Optimizer,
                   gen: torch.Generator) -> dict[str, float]:
        return _soft_alpha_step(net, x, y, objective=objective, optimizer=optimizer,
                                weights=[m.probs() for m in net.mixed])


class GumbelSoftmax:
    name = "gumbel"

    def __init__(self, *, tau0: float = 5.0, tau_end: float = 0.1) -> None:
        if not 0 < tau_end <= tau0:
            raise ValueError("need 0 < tau_end <= tau0")
        self.tau0, self.tau_end = tau0, tau_end
        self.tau = tau0

    def on_epoch(self, epoch: int, total_epochs: int) -> None:
        frac = epoch / max(total_epochs - 1, 1)
        self.tau = self.tau0 * math.exp(frac * math.log(self.tau_end / self.tau0))

    def weights(self, m: MixedOp, gen: torch.Generator) -> torch.Tensor:  # (N,), sums to 1
        u = torch.rand(len(m.names), generator=gen).clamp(1e-10, 1.0 - 1e-7).to(m.alpha.device)
        return torch.softmax((m.alpha - torch.log(-torch.log(u))) / self.tau, 0)

    def prepare_weight_step(self, net: Supernet, gen: torch.Generator, *, warmup: bool) -> None:
        with torch.no_grad():
            for m in net.mixed:
                m.set_active(list(range(len(m.names))), weights=self.weights(m, gen))

    def alpha_step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, *,
                   objective: Objective, optimizer: torch.optim.Optimizer,
                   gen: torch.Generator) -> dict[str, float]:
        info = _soft_alpha_step(net, x, y, objective=objective, optimizer=optimizer,
                                weights=[self.weights(m, gen) for m in net.mixed])
        info["tau"] = self.tau
        return info

"""Gate strategies: how each MixedOp picks its paths in a weight step and an alpha step.

Every strategy is one small class with the same two methods; the searcher never branches on
the name.  ``STRATEGIES`` is the registry (``--strategy NAME``).

  * ``binary-two`` (default, ProxylessNAS): weight step runs one path sampled from p; alpha step
    samples two distinct paths, runs both behind a one-hot gate and uses the BinaryConnect
    estimate on the renormalised pair, then shifts the pair so unsampled paths keep p.
  * ``binary-full``: the same estimate over all paths (memory of N paths; for comparison).
  * ``reinforce``: sampled whole architectures, reward acc * (T / LAT)^w, moving-average
    baseline (strategies_reinforce.py; LAT from the table, or measured live for every sampled
    arch with ``reinforce-live``, or any ``latency_fn(arch) -> ms`` given to ``Reinforce``).
  * ``gumbel`` (FBNet): Gumbel-softmax weights over all paths, annealed temperature.
  * ``darts``: softmax-weighted sum of all paths in both steps (the memory baseline).
  (The last two are in strategies_soft.py; the shared contract is in strategies_base.py.)
"""

from __future__ import annotations

from typing import Callable

import torch

from directnas.errors import UserError
from directnas.search.strategies_base import FrozenWeights as _FrozenWeights
from directnas.search.strategies_base import Objective, Strategy, sample_single_paths
from directnas.search.strategies_reinforce import Reinforce, live_latency
from directnas.search.strategies_soft import Darts, GumbelSoftmax
from directnas.search.supernet import MixedOp, Supernet

__all__ = ["Objective", "Strategy", "STRATEGIES", "BinaryGates", "Reinforce", "GumbelSoftmax",
           "Darts", "binary_gate_grad", "make_strategy", "sample_single_paths"]


def binary_gate_grad(dg: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i) = p_i * (dL/dg_i - sum_j dL/dg_j p_j)."""
    return p * (dg - (dg * p).sum())


class BinaryGates:
    """ProxylessNAS binary gates; ``paths=2`` is the default two-path estimator."""

    def __init__(self, *, paths: int | None = 2) -> None:
        self.paths = paths
        self.name = "binary-two" if paths == 2 else "binary-full"

    def prepare_weight_step(self, net: Supernet, gen: torch.Generator, *, warmup: bool) -> None:
        sample_single_paths(net, gen, uniform=warmup)

    def _sample(self, m: MixedOp, gen: torch.Generator) -> tuple[list[int], torch.Tensor]:
        p = m.probs().detach()
        n = len(m.names)
        k = n if self.paths is None else min(self.paths, n)
        idx = torch.multinomial(p, k, replacement=False, generator=gen).tolist() if k < n \
            else list(range(n))
        old = m.alpha.detach()[idx].clone()
        pick = int(torch.multinomial(torch.softmax(old, 0), 1, generator=gen))
        gates = torch.zeros(len(idx))
        gates[pick] = 1.0
        gates.requires_grad_(True)
        m.set_active(idx, gates=gates)
        return idx, old

    def alpha_step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, *,
                   objective: Objective, optimizer: torch.optim.Optimizer,
                   gen: torch.Generator) -> dict[str, float]:
        sampled = [self._sample(m, gen) for m in net.mixed]
        optimizer.zero_grad(set_to_none=False)
        with _FrozenWeights(net):
            logits = net(x)
            loss, info = objective(logits, y, net.expected_latency())
            loss.backward()
        with torch.no_grad():
            for m, (idx, old) in zip(net.mixed, sampled):
                assert m.gates is not None and m.gates.grad is not None
                if m.alpha.grad is None:
                    m.alpha.grad = torch.zeros_like(m.alpha)
                m.alpha.grad[idx] += binary_gate_grad(m.gates.grad, torch.softmax(old, 0))
                m.set_active(idx[:1])
        optimizer.step()
        with torch.no_grad():  # keep unsampled paths' probabilities: restore the pair's logsumexp
            for m, (idx, old) in zip(net.mixed, sampled):
                new = m.alpha[idx]
                m.alpha[idx] = new - (torch.logsumexp(new, 0) - torch.logsumexp(old, 0))
        info["loss"] = float(loss.detach())
        return info


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "binary-two": lambda: BinaryGates(paths=2),
    "binary-full": lambda: BinaryGates(paths=None),
    "reinforce": lambda: Reinforce(),
    # LAT of every sampled arch measured end to end on torch-cpu (batch 1, 2 threads), not the table
    "reinforce-live": lambda: Reinforce(latency_fn=live_latency(), name="reinforce-live"),
    "gumbel": lambda: GumbelSoftmax(),
    "darts": lambda: Darts(),
}


def make_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise UserError(f"unknown strategy {name!r}: use one of {', '.join(STRATEGIES)}")
    return STRATEGIES[name]()

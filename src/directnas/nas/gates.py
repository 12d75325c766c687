"""Gate strategies: how each MixedOp picks its paths in a weight step and an alpha step.

Every strategy is one small class with the same two methods; the searcher never branches on
the name.  ``STRATEGIES`` is the registry (``--strategy NAME``).

  * ``binary-two`` (default, ProxylessNAS): weight step runs one path sampled from p; alpha step
    samples two distinct paths behind a one-hot gate and uses the BinaryConnect estimate on the
    renormalised pair, then shifts the pair so unsampled paths keep p.  Only the gate-1 path
    is in the graph; the other's dL/dg is recomputed (``recompute=True``, see BinaryGates).
  * ``binary-full``: the same estimate over all paths (memory of N paths; for comparison).
  * ``binary-full-v2`` (the official default ``full_v2``): all paths' gate gradients, but only
    the gate-1 path in the graph; the others are recomputed under no_grad (memory of one path).
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
from directnas.nas.strategies_base import FrozenWeights as _FrozenWeights
from directnas.nas.strategies_base import Objective, Strategy, sample_single_paths
from directnas.nas.strategies_reinforce import Reinforce, live_latency
from directnas.nas.strategies_soft import Darts, GumbelSoftmax
from directnas.nas.supernet import MixedOp, Supernet

__all__ = ["Objective", "Strategy", "STRATEGIES", "BinaryGates", "Reinforce", "GumbelSoftmax",
           "Darts", "binary_gate_grad", "make_strategy", "sample_single_paths"]


def binary_gate_grad(dg: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i) = p_i * (dL/dg_i - sum_j dL/dg_j p_j)."""
    return p * (dg - (dg * p).sum())


class BinaryGates:
    """ProxylessNAS binary gates; ``paths=2`` is the default two-path estimator.

    ``recompute=False``: every sampled path runs in the graph behind its gate (memory of
    ``paths`` paths).  ``recompute=True`` (the official ``full_v2`` idea): only the gate-1 path
    runs in the graph; after the backward pass dL/dg_j = <dL/dy, o_j(x)> is computed for the
    other sampled paths under no_grad from the layer's saved input and output gradient —
    the same estimate at the memory of one path (plus one path's transient forward).
    """

    def __init__(self, *, paths: int | None = 2, recompute: bool = False,
                 name: str | None = None) -> None:
        self.paths, self.recompute = paths, recompute
        self.name = name or ("binary-two" if paths == 2 else "binary-full")

    def prepare_weight_step(self, net: Supernet, gen: torch.Generator, *, warmup: bool) -> None:
        sample_single_paths(net, gen, uniform=warmup)

    def _sample(self, m: MixedOp, gen: torch.Generator) -> tuple[list[int], torch.Tensor]:
        p = m.probs().detach().cpu()  # drawn on the CPU generator: the same draws on any device
        n = len(m.names)
        k = n if self.paths is None else min(self.paths, n)
        idx = torch.multinomial(p, k, replacement=False, generator=gen).tolist() if k < n \
            else list(range(n))
        old = m.alpha.detach()[idx].clone()
        pick = int(torch.multinomial(torch.softmax(old, 0).cpu(), 1, generator=gen))
        gates = torch.zeros(len(idx), device=m.alpha.device)
        gates[pick] = 1.0
        gates.requires_grad_(True)
        if self.recompute:  # only the gate-1 path in the graph; its gate alone carries grad
            idx.insert(0, idx.pop(pick))
            old = m.alpha.detach()[idx].clone()
            gates = torch.ones(1, requires_grad=True, device=m.alpha.device)
            m.set_active(idx[:1], gates=gates)
        else:
            m.set_active(idx, gates=gates)
        return idx, old

    def _gate_grads(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, objective: Objective,
                    sampled: list[list[int]]) -> tuple[torch.Tensor, dict[str, float], list[torch.Tensor]]:
        """Forward + backward; returns the loss, its info and dL/dg over each layer's sampled paths."""
        if not self.recompute:
            loss, info = objective(net(x), y, net.expected_latency())
            loss.backward()
            return loss, info, [m.gates.grad for m in net.mixed]  # type: ignore[union-attr]
        saved: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: input, output

        def keep(m: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if out.requires_grad:
                out.retain_grad()
            saved.append((inp[0].detach(), out))

        hooks = [m.register_forward_hook(keep) for m in net.mixed]
        try:
            loss, info = objective(net(x), y, net.expected_latency())
        finally:
            for h in hooks:
                h.remove()
        loss.backward()
        grads = []
        with torch.no_grad():
            for m, idx, (inp, out) in zip(net.mixed, sampled, saved):
                g = m.gates.grad if m.gates is not None else None
                dg = [torch.zeros(1, device=m.alpha.device) if g is None else g.reshape(1)]
                for i in idx[1:]:
                    o = None if i == m.zero_index else m.paths[i](inp)  # dL/dg_zero = 0 exactly
                    dg.append(torch.zeros(1, device=m.alpha.device) if o is None or out.grad is None
                              else (out.grad * o).sum().reshape(1))
                grads.append(torch.cat(dg))
        return loss, info, grads

    def alpha_step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, *,
                   objective: Objective, optimizer: torch.optim.Optimizer,
                   gen: torch.Generator) -> dict[str, float]:
        sampled = [self._sample(m, gen) for m in net.mixed]
        optimizer.zero_grad(set_to_none=False)
        with _FrozenWeights(net):
            loss, info, grads = self._gate_grads(net, x, y, objective, [i for i, _ in sampled])
        with torch.no_grad():
            for m, (idx, old), dg in zip(net.mixed, sampled, grads):
                if m.alpha.grad is None:
                    m.alpha.grad = torch.zeros_like(m.alpha)
                m.alpha.grad[idx] += binary_gate_grad(dg, torch.softmax(old, 0))
                m.set_active(idx[:1])
        optimizer.step()
        with torch.no_grad():  # keep unsampled paths' probabilities: restore the pair's logsumexp
            for m, (idx, old) in zip(net.mixed, sampled):
                new = m.alpha[idx]
                m.alpha[idx] = new - (torch.logsumexp(new, 0) - torch.logsumexp(old, 0))
        info["loss"] = float(loss.detach())
        return info


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "binary-two": lambda: BinaryGates(paths=2, recompute=True),  # same estimate, one path's memory
    "binary-full": lambda: BinaryGates(paths=None),
    "binary-full-v2": lambda: BinaryGates(paths=None, recompute=True, name="binary-full-v2"),
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

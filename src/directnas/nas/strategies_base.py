"""What every gate strategy shares: the Strategy contract, the objective type, small helpers.

A strategy decides which paths of every MixedOp run in a weight step (``prepare_weight_step``)
and performs one alpha update on a validation batch (``alpha_step``).  It may also define
``on_epoch(epoch, total_epochs)``: the searcher calls it, when present, at the start of every
epoch (warm-up included), e.g. to anneal a temperature.  Schedules must be a pure function of
``epoch`` so that a resumed search gets the same value.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from directnas.nas.supernet import Supernet

# objective(logits, labels, expected_latency) -> (loss, info); a HardwareLoss has ``target_ms``.
Objective = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None],
                     tuple[torch.Tensor, dict[str, float]]]


class Strategy(Protocol):
    name: str

    def prepare_weight_step(self, net: Supernet, gen: torch.Generator, *, warmup: bool) -> None:
        """Set the active path(s) of every MixedOp for a weight step."""

    def alpha_step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, *,
                   objective: Objective, optimizer: torch.optim.Optimizer,
                   gen: torch.Generator) -> dict[str, float]:
        """One update of alpha on a validation batch (weights frozen); info has ``loss``."""


def sample_single_paths(net: Supernet, gen: torch.Generator, *, uniform: bool) -> None:
    """One path per MixedOp, drawn from p (or uniformly during warm-up)."""
    for m in net.mixed:
        n = len(m.names)
        if uniform:
            i = int(torch.randint(n, (1,), generator=gen))
        else:
            i = int(torch.multinomial(m.probs().detach().cpu(), 1, generator=gen))
        m.set_active([i])


def set_argmax_paths(net: Supernet) -> None:
    """Leave every MixedOp on its most probable path, with no gates or weights attached."""
    for m in net.mixed:
        m.set_active([int(torch.argmax(m.alpha.detach()))])


def target_of(objective: Objective) -> float | None:
    """The latency target of the objective (``HardwareLoss.target_ms``), None without one or
    when the objective leaves the latency to the derive (form ``none``: alpha does not see T)."""
    if getattr(objective, "form", None) == "none":
        return None
    t = getattr(objective, "target_ms", None)
    return None if t is None else float(t)


class FrozenWeights:
    """Context: weights do not need grads in an alpha step (saves their backward)."""

    def __init__(self, net: Supernet) -> None:
        self.params = net.weight_parameters()

    def __enter__(self) -> None:
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        for p in self.params:
            p.requires_grad_(True)

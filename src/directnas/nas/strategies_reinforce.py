"""REINFORCE over whole architectures (ProxylessNAS's RL mode; reward as in MnasNet).

Alpha step: sample ``samples`` architectures a_k from p (one op per layer), run each on the
validation batch with the inherited weights (no grad: memory of one path), and reward it with

    R = acc * (T / LAT)^w          (official: w = 0.1; equal to acc * (LAT / T)^-w)

where LAT is the table's prediction of a_k, or what ``latency_fn(arch)`` returns (a live
measurement, e.g. :func:`live_latency`).  Without a target T the reward is the accuracy.  Then
alpha moves along  sum_k (R_k - b) * grad log p(a_k) / K  with b a moving average of the
rewards.  Weight step: one path sampled from p, as in the binary modes.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch

from directnas.latency.measure import Protocol, measure_net
from directnas.nas.strategies_base import Objective, sample_single_paths, set_argmax_paths, target_of
from directnas.nas.supernet import Supernet
from directnas.space.arch import Arch

log = logging.getLogger(__name__)

LatencyFn = Callable[[Arch], float]  # arch -> latency in ms


def live_latency(*, backend: str = "torch-cpu", proto: Protocol = Protocol(warmup=2, repeats=5),
                 cache: bool = True) -> LatencyFn:
    """A latency callable that builds the arch and measures it end to end (memoised per arch)."""
    seen: dict[tuple[str, ...], float] = {}

    def measure(arch: Arch) -> float:
        key = tuple(arch.ops)
        if not cache or key not in seen:
            space = arch.space
            shape = (space.input_channels, space.input_size, space.input_size)
            # timed with the protocol's threads; the search's own count is restored after
            seen[key] = float(measure_net(arch.build(), shape, backend=backend, proto=proto)["ms"])
        return seen[key]

    return measure


class Reinforce:
    def __init__(self, *, samples: int = 4, reward_w: float = 0.1, baseline_decay: float = 0.9,
                 latency_fn: LatencyFn | None = None, name: str = "reinforce") -> None:
        self.name = name
        if samples < 1 or not 0.0 <= baseline_decay < 1.0:
            raise ValueError("samples must be >= 1 and baseline_decay in [0, 1)")
        self.samples, self.reward_w, self.baseline_decay = samples, reward_w, baseline_decay
        self.latency_fn = latency_fn
        self.baseline: float | None = None

    def prepare_weight_step(self, net: Supernet, gen: torch.Generator, *, warmup: bool) -> None:
        sample_single_paths(net, gen, uniform=warmup)

    def latency_ms(self, net: Supernet, idx: list[int]) -> float:
        if self.latency_fn is not None:
            return float(self.latency_fn(Arch(net.space, [m.names[i] for m, i in zip(net.mixed, idx)])))
        return float(net.fixed_latency_ms) + sum(float(m.latency_ms[i]) for m, i in zip(net.mixed, idx))

    def reward(self, acc: float, lat_ms: float, target_ms: float | None) -> float:
        if target_ms is None:
            return acc
        return acc * (target_ms / max(lat_ms, 1e-9)) ** self.reward_w

    def alpha_step(self, net: Supernet, x: torch.Tensor, y: torch.Tensor, *,
                   objective: Objective, optimizer: torch.optim.Optimizer,
                   gen: torch.Generator) -> dict[str, float]:
        target = target_of(objective)
        samples: list[list[int]] = []
        rewards: list[float] = []
        accs, lats = [], []
        with torch.no_grad():
            for _ in range(self.samples):
                idx = [int(torch.multinomial(m.probs().cpu(), 1, generator=gen)) for m in net.mixed]
                for m, i in zip(net.mixed, idx):
                    m.set_active([i])
                acc = float((net(x).argmax(1) == y).float().mean())
                lat = self.latency_ms(net, idx)
                samples.append(idx)
                accs.append(acc)
                lats.append(lat)
                rewards.append(self.reward(acc, lat, target))
        mean_r = sum(rewards) / len(rewards)
        b = mean_r if self.baseline is None else self.baseline
        optimizer.zero_grad(set_to_none=False)
        loss = torch.zeros((), device=net.mixed[0].alpha.device)
        for idx, r in zip(samples, rewards):
            log_p = sum(torch.log_softmax(m.alpha, 0)[i] for m, i in zip(net.mixed, idx))
            loss = loss - (r - b) * log_p / len(samples)
        loss.backward()
        optimizer.step()
        self.baseline = mean_r if self.baseline is None else \
            self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean_r
        set_argmax_paths(net)
        info = {"loss": float(loss.detach()), "reward": mean_r, "baseline": b,
                "accuracy": sum(accs) / len(accs), "sampled_latency_ms": sum(lats) / len(lats)}
        if target is not None:
            info["expected_latency_ms"] = float(net.expected_latency().detach())
        return info

"""Low-rank convs: a k x k conv c -> d becomes a k x k conv c -> d' and a 1 x 1 conv d' -> d,
initialised from the SVD of the weight reshaped to (d, c*k*k), then fine-tuned.

``d'`` per layer gives the asked MAC speed-up: ``k*k*c*d / (d' * (k*k*c + d)) = speedup``.
Grouped (e.g. depthwise) convs are not eligible."""

from __future__ import annotations

import logging
import math

from torch import nn

from directnas.compression.finetune import finetune, weight_layers
from directnas.compression.state import State
from directnas.models.structure import decompose, replace

log = logging.getLogger(__name__)


def eligible(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == 1 and min(
        m.out_channels, m.in_channels * m.kernel_size[0] * m.kernel_size[1]) > 1


def rank_for(conv: nn.Conv2d, speedup: float) -> int:
    k2c = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    d = conv.out_channels
    return max(1, min(d, k2c, math.floor(k2c * d / (speedup * (k2c + d)))))


def run(state: State) -> None:
    cfg = state.cfg
    before = state.latency_ms()
    ranks: dict[str, int] = {}
    for name, m in weight_layers(state.net):
        if not eligible(m):
            continue
        r = rank_for(m, cfg.speedup)
        k2c = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        if r * (k2c + m.out_channels) >= k2c * m.out_channels:
            continue  # no fewer MACs at this rank
        replace(state.net, name, decompose(m, r))
        ranks[name] = r
        state.note(name, rank=r, full_rank=min(m.out_channels, k2c),
                   mac_speedup=k2c * m.out_channels / (r * (k2c + m.out_channels)))
    if not ranks:
        log.warning("lowrank: no eligible conv (grouped/depthwise convs are not) to decompose")
    finetune(state.net, state.data, cfg.finetune, progress=state.progress, desc="lowrank")
    after = state.latency_ms()
    state.structure.setdefault("lowrank", {}).update(ranks)
    state.report["lowrank"] = {"target_speedup": cfg.speedup, "ranks": ranks,
                               "latency_ms_before": before, "latency_ms_after": after,
                               "measured_speedup": before / after}

"""Trained ternary quantization (TTQ): latent weights normalised by their max, thresholded at
``t * max|w|`` to {-Wn, 0, +Wp} with the two scales learned per layer; gradients reach the
latent weights straight through (scaled by Wp / 1 / Wn as in the paper).  The first and the
last layer stay in full precision."""

from __future__ import annotations

import logging

import torch
from torch import nn

from directnas.compression.finetune import finetune, weight_layers
from directnas.compression.state import State

log = logging.getLogger(__name__)


def ternarize(w: torch.Tensor, wp: torch.Tensor, wn: torch.Tensor, t: float) -> torch.Tensor:
    delta = t * w.detach().abs().max()
    pos = (w.detach() > delta).to(w.dtype)
    neg = (w.detach() < -delta).to(w.dtype)
    scale = wp.detach() * pos + wn.detach() * neg + (1 - pos - neg)
    # the gradient of a scale sums over thousands of weights: use their mean (values unchanged)
    wp = wp.detach() + (wp - wp.detach()) / pos.sum().clamp_min(1)
    wn = wn.detach() + (wn - wn.detach()) / neg.sum().clamp_min(1)
    # value: Wp * pos - Wn * neg exactly; gradient to w: scale * grad (straight through)
    return wp * pos - wn * neg + (w - w.detach()) * scale


class _Ternary:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self, m: nn.Module, _inp: object) -> None:
        m.weight = ternarize(m.latent, m.wp, m.wn, self.t)


def start(m: nn.Module, t: float) -> _Ternary:
    """Turn a layer's weight into (latent, wp, wn) and hook the ternary weight in."""
    w = m.weight.detach()
    top = w.abs().max().clamp_min(1e-12)
    latent = w / top
    pos, neg = latent > t, latent < -t
    wp = w[pos].abs().mean() if pos.any() else top
    wn = w[neg].abs().mean() if neg.any() else top
    del m.weight
    m.register_parameter("latent", nn.Parameter(latent.clone()))
    m.register_parameter("wp", nn.Parameter(wp.reshape(())))
    m.register_parameter("wn", nn.Parameter(wn.reshape(())))
    hook = _Ternary(t)
    m._ternary_handle = m.register_forward_pre_hook(hook)  # type: ignore[assignment]
    return hook


def finish(m: nn.Module, t: float) -> None:
    """Write the ternary weight back as a plain parameter; drop the latent and the hook."""
    m._ternary_handle.remove()  # type: ignore[operator]
    with torch.no_grad():
        w = ternarize(m.latent, m.wp, m.wn, t).detach().clone()
    if "weight" in m.__dict__:
        del m.__dict__["weight"]
    for name in ("latent", "wp", "wn", "_ternary_handle"):
        delattr(m, name)
    m.weight = nn.Parameter(w)


def run(state: State) -> None:
    t = state.cfg.ternary_threshold
    layers = weight_layers(state.net)
    inner = layers[1:-1]
    if not inner:
        log.warning("ternary: the net has no layer between the first and the last; nothing to do")
    for _, m in inner:
        start(m, t)
    finetune(state.net, state.data, state.cfg.finetune, progress=state.progress, desc="ternary")
    for name, m in inner:
        wp, wn = float(m.wp.detach()), float(m.wn.detach())
        finish(m, t)
        state.note(name, ternary=True, wp=wp, wn=wn, sparsity=float((m.weight == 0).float().mean()))
    state.report["ternary"] = {"threshold": t, "layers": [n for n, _ in inner],
                               "full_precision": [layers[0][0], layers[-1][0]] if layers else []}

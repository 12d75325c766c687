"""Dynamic fixed point (Ristretto-style): per layer a bit width and a fractional length ``fl`` for
the weights and for the feature map entering the layer, chosen greedily layer by layer against
the float model.  ``torch.fake_quantize_per_tensor_affine(x, 2**-fl, 0, qmin, qmax)`` is exactly
a signed ``bw``-bit fixed-point number with ``fl`` fractional bits."""

from __future__ import annotations

import copy
import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from directnas.compression.finetune import accuracy, eval_batches, weight_layers
from directnas.compression.state import State
from directnas.models.structure import ActQuant, fixed

log = logging.getLogger(__name__)


def range_fl(max_abs: float, bw: int) -> int:
    """The fractional length that just fits ``max_abs`` in a signed ``bw``-bit number."""
    if max_abs <= 0:
        return bw - 1
    return bw - 1 - math.ceil(math.log2(max_abs))


@torch.no_grad()
def quantize_fixed(net: nn.Module, x: torch.Tensor, bw: int,
                   ) -> tuple[nn.Module, dict[str, tuple[int, int]], dict[str, list[int]]]:
    """A fixed-point copy of ``net``; returns (net, weight formats, feature-map formats).

    Layer by layer, the (weight fl, input fl) pair among the range-based value and the two finer
    ones that keeps the logits on ``x`` closest (MSE) to the float logits is fixed; later layers
    stay float while an earlier one is chosen."""
    net = copy.deepcopy(net).eval()
    ref = net(x)
    layers = weight_layers(net)
    in_max: dict[str, float] = {}
    hooks = [m.register_forward_pre_hook(
        lambda m, inp, n=n: in_max.__setitem__(n, float(inp[0].abs().max()))) for n, m in layers]
    net(x)
    for h in hooks:
        h.remove()
    wfmt: dict[str, tuple[int, int]] = {}
    afmt: dict[str, list[int]] = {}
    for name, m in layers:
        w0 = m.weight.detach().clone()
        fw0, fa0 = range_fl(float(w0.abs().max()), bw), range_fl(in_max[name], bw)
        best: tuple[float, int, int] | None = None
        hook = ActQuant(bw, fa0)
        handle = m.register_forward_pre_hook(hook)
        for fw in (fw0, fw0 + 1, fw0 + 2):
            m.weight.copy_(fixed(w0, bw, fw))
            for fa in (fa0, fa0 + 1, fa0 + 2):
                hook.fl = fa
                err = float(F.mse_loss(net(x), ref))
                if best is None or err < best[0]:
                    best = (err, fw, fa)
        assert best is not None
        _, fw, fa = best
        m.weight.copy_(fixed(w0, bw, fw))
        hook.fl = fa
        wfmt[name], afmt[name] = (bw, fw), [bw, fa]
    log.info("fixed point %d bits: weight fl %s", bw, {n: f for n, (_, f) in wfmt.items()})
    return net, wfmt, afmt


def run(state: State) -> None:
    cfg = state.cfg
    x = state.calib_batch(cfg.calib_images)
    test = list(eval_batches(state.data))
    table = {"float": accuracy(state.net, test)}
    chosen = None
    for bw in sorted(set(cfg.report_bits) | {cfg.fixed_bits}, reverse=True):
        qnet, wfmt, afmt = quantize_fixed(state.net, x, bw)
        table[str(bw)] = accuracy(qnet, test)
        log.info("fixed point %d bits: test accuracy %.4f", bw, table[str(bw)])
        if bw == cfg.fixed_bits:
            chosen = (qnet, wfmt, afmt)
    assert chosen is not None
    state.net, wfmt, afmt = chosen
    state.fixed.update({f"{n}.weight": f for n, f in wfmt.items()})
    state.structure["act_fl"] = afmt
    for n, (bw, fl) in wfmt.items():
        state.note(n, weight_bits=bw, weight_fl=fl, input_fl=afmt[n][1])
    state.report["fixed_point"] = {"bits": cfg.fixed_bits, "test_accuracy_by_bits": table}

"""Structures a saved ``model.pt`` may carry besides its architecture, rebuilt on load:
fixed-point feature maps (a forward pre-hook per layer) and low-rank convs (a k x k conv split
into a rank-r conv and a 1 x 1 conv).  ``compress`` creates them; ``models.model_file`` restores them."""

from __future__ import annotations

import torch
from torch import nn


def fixed(x: torch.Tensor, bw: int, fl: int) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, 2.0 ** -fl, 0, -(1 << (bw - 1)), (1 << (bw - 1)) - 1)


class ActQuant:
    """Forward pre-hook that rounds a layer's input to (bw, fl) fixed point."""

    def __init__(self, bw: int, fl: int) -> None:
        self.bw, self.fl = bw, fl

    def __call__(self, _m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (fixed(inputs[0], self.bw, self.fl), *inputs[1:])


def attach_act_quant(net: nn.Module, act: dict[str, list[int]]) -> None:
    """Re-attach saved feature-map formats ``{layer: [bw, fl]}`` (e.g. after loading)."""
    for name, (bw, fl) in act.items():
        net.get_submodule(name).register_forward_pre_hook(ActQuant(bw, fl))


def decompose(conv: nn.Conv2d, rank: int) -> nn.Sequential:
    """(k x k, c -> rank) then (1 x 1, rank -> d), the best rank-``rank`` fit of the weight."""
    d = conv.out_channels
    first = nn.Conv2d(conv.in_channels, rank, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, bias=False, padding_mode=conv.padding_mode)
    second = nn.Conv2d(rank, d, 1, bias=conv.bias is not None)
    with torch.no_grad():
        w = conv.weight.detach().reshape(d, -1)                    # (d, c*k*k)
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        root = s[:rank].sqrt()
        first.weight.copy_((root[:, None] * vh[:rank]).reshape(first.weight.shape))
        second.weight.copy_((u[:, :rank] * root[None, :]).reshape(d, rank, 1, 1))
        if conv.bias is not None:
            second.bias.copy_(conv.bias)
    return nn.Sequential(first, second)


def replace(net: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, module)


def apply_structure(net: nn.Module, ranks: dict[str, int]) -> None:
    """Rebuild the decomposed layers of a saved net (weights come from its state dict)."""
    for name, r in ranks.items():
        replace(net, name, decompose(net.get_submodule(name), r))

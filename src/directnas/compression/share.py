"""Trained weight sharing (Deep Compression): per-layer k-means of the non-zero weights to
2**b centroids (linear init), then fine-tuning of the centroids.  The other floating tensors
(BatchNorm affine and running statistics, biases: a third of a small searched net's file) are
rounded to float16 at the end, which the ``.dnz`` codec then stores in two bytes each.

During fine-tuning a layer's weight is computed from its centroids, ``weight = table[idx]``
(``table`` = centroids plus a fixed 0 for pruned entries), in a forward pre-hook; the backward of
that gather sums the weight gradients of each cluster, i.e. the grouped gradient of the paper
(divided by the cluster size, see ``_Shared``).
The hooks are removed at the end and the weights written back as plain tensors.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import nn

from directnas.compression.finetune import finetune, layer_kind, weight_layers
from directnas.compression.state import State

log = logging.getLogger(__name__)


def kmeans_1d(values: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (k',), label per value) with linear initialisation over [min, max]."""
    k = min(k, len(np.unique(values)))
    init = np.linspace(values.min(), values.max(), k).reshape(-1, 1)
    km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=100, random_state=seed)
    labels = km.fit_predict(values.reshape(-1, 1).astype(np.float64))
    return km.cluster_centers_.ravel().astype(np.float32), labels


class _Shared:
    """Forward pre-hook: ``module.weight = cat(centroids, 0)[idx]``."""

    def __init__(self, idx: torch.Tensor, k: int) -> None:
        self.idx = idx
        self.size = torch.bincount(idx.flatten(), minlength=k + 1)[:k].clamp_min(1).float()

    def __call__(self, module: nn.Module, _inp: object) -> None:
        c = module.centroids
        # value c; gradient: the cluster's summed gradient / its size, so that one LR suits
        # centroids and plain weights (the raw sum over ~1000 weights diverges at LR 0.05)
        c = c.detach() + (c - c.detach()) / self.size
        module.weight = torch.cat([c, c.new_zeros(1)])[self.idx]


def quantize_layer(m: nn.Module, bits: int, *, seed: int = 0) -> tuple[nn.Parameter, torch.Tensor]:
    """Cluster a layer's non-zero weights; returns (centroids, idx) with idx = k for zeros."""
    w = m.weight.detach()
    nz = w != 0
    idx = torch.full(w.shape, 0, dtype=torch.long)
    if not nz.any():
        return nn.Parameter(torch.zeros(0)), idx
    cents, labels = kmeans_1d(w[nz].numpy(), 1 << bits, seed=seed)
    idx[nz] = torch.from_numpy(labels).long()
    idx[~nz] = len(cents)
    return nn.Parameter(torch.from_numpy(cents)), idx


def run(state: State) -> None:
    cfg, net = state.cfg, state.net
    handles = []
    for name, m in weight_layers(net):
        bits = cfg.bits_conv if layer_kind(m) == "conv" else cfg.bits_fc
        if cfg.layer_bits is not None:  # chosen by the recipe search (compress.recipe)
            bits = cfg.layer_bits.get(name, bits)
        cents, idx = quantize_layer(m, bits, seed=cfg.finetune.seed)
        del m.weight
        m.register_parameter("centroids", cents)
        hook = _Shared(idx, cents.numel())
        handles.append((m, hook, m.register_forward_pre_hook(hook)))
        state.note(name, bits=bits, clusters=int(cents.numel()))
    finetune(net, state.data, cfg.finetune, progress=state.progress, desc="share")
    for m, hook, h in handles:
        h.remove()
        with torch.no_grad():
            table = torch.cat([m.centroids, m.centroids.new_zeros(1)])
            w = table[hook.idx].clone()
        if hasattr(m, "weight"):
            del m.weight
        del m.centroids
        m.weight = nn.Parameter(w)
    halved = round_rest_to_half(net)
    state.report["share"] = {"bits_conv": cfg.bits_conv, "bits_fc": cfg.bits_fc,
                             "bits": {n: v["bits"] for n, v in state.layers.items() if "bits" in v},
                             "float16_tensors": halved}


def round_rest_to_half(net: nn.Module) -> list[str]:
    """Round the floating tensors that sharing leaves alone (BatchNorm affine and statistics,
    biases) to float16 values, so the file stores them in 2 bytes; a tensor with a value
    outside float16's range stays float32.  Returns the names rounded."""
    shared = {f"{n}.weight" for n, _ in weight_layers(net)}
    done = []
    with torch.no_grad():
        for name, t in net.state_dict(keep_vars=True).items():
            if name in shared or not t.is_floating_point():
                continue
            h = t.detach().half()
            if not torch.isfinite(h).all() and torch.isfinite(t).all():
                continue
            t.data.copy_(h.float())
            done.append(name)
    log.info("share: %d BatchNorm/bias tensors rounded to float16", len(done))
    return done

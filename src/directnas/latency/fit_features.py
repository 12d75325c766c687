"""Features of (layer, op) for the latency fits: one-hot table, shared terms, a physics prior.

Part of ``hardware.fit`` (whose docstring describes the models); import from there.
"""

from __future__ import annotations



import numpy as np

from directnas.space.macs import op_mmacs
from directnas.space.ops import SKIP, parse_op
from directnas.space.space import LayerSpec, SearchSpace


# ---- features ------------------------------------------------------------------------------
def _op_physics(layer: LayerSpec, op: str) -> tuple[float, float, float, float]:
    """(MMACs, activation traffic / 1e5 elements, convs, not identity) of ``op`` at ``layer``."""
    hw, ho, ci, co = layer.hw_in, layer.hw_out, layer.c_in, layer.c_out
    if op == SKIP:
        if ci == co and layer.stride == 1:
            return 0.0, 0.0, 0.0, 0.0
        return op_mmacs(layer, op), (hw * hw * ci + ho * ho * co) / 1e5, 1.0, 1.0
    spec = parse_op(op)
    if spec is None:  # zero
        return 0.0, 0.0, 0.0, 0.0
    mid = ci * spec.expand
    traffic = hw * hw * ci + (hw * hw * mid if spec.expand != 1 else 0) + ho * ho * (mid + co)
    return op_mmacs(layer, op), traffic / 1e5, 3.0 if spec.expand != 1 else 2.0, 1.0


class Featurizer:
    """Per-(layer, op) feature vectors; an architecture's features are their sum over layers."""

    def __init__(self, space: SearchSpace, *, shared: bool = True) -> None:
        self.space = space
        layers = space.layers
        self.offsets = np.cumsum([0] + [len(l.candidates) for l in layers])
        n_onehot = int(self.offsets[-1])
        onehot = [np.eye(n_onehot)[self.offsets[i]:self.offsets[i + 1]] for i in range(len(layers))]
        per_layer = [[onehot[i][j] for j in range(len(l.candidates))] for i, l in enumerate(layers)]
        if shared:
            shapes = sorted({(l.c_in, l.c_out, l.stride, l.hw_in) for l in layers})
            ops = sorted({op for l in layers for op in l.candidates})
            stages = sorted({l.stage for l in layers})
            for i, l in enumerate(layers):
                si = shapes.index((l.c_in, l.c_out, l.stride, l.hw_in))
                for j, op in enumerate(l.candidates):
                    g = np.zeros(len(shapes) * len(ops))
                    g[si * len(ops) + ops.index(op)] = 1.0
                    o = np.zeros(len(ops))
                    o[ops.index(op)] = 1.0
                    ph = np.zeros(4 * len(stages))
                    k = stages.index(l.stage)
                    ph[4 * k:4 * k + 4] = _op_physics(l, op)
                    per_layer[i][j] = np.concatenate([per_layer[i][j], g, o, ph])
        self.table = [np.stack(rows) for rows in per_layer]  # layer -> (candidates, F)
        self.dim = self.table[0].shape[1]
        # physics columns are few and well determined: scale them up so ridge barely shrinks them
        self.scale = np.ones(self.dim)
        if shared:
            n_ph = 4 * len(sorted({l.stage for l in layers}))
            ph_cols = self.dim - n_ph + np.arange(n_ph)
            std = np.concatenate([t[:, ph_cols] for t in self.table]).std(0)
            self.scale[ph_cols] = 10.0 / np.maximum(std, 1e-9)

    def __call__(self, idx: np.ndarray) -> np.ndarray:  # (N, layers) -> (N, F)
        out = np.zeros((idx.shape[0], self.dim))
        for i, t in enumerate(self.table):
            out += t[idx[:, i]]
        return out * self.scale

    def onehot(self, idx: np.ndarray) -> np.ndarray:  # (N, layers) -> (N, sum candidates)
        out = np.zeros((idx.shape[0], int(self.offsets[-1])))
        for i in range(idx.shape[1]):
            out[np.arange(idx.shape[0]), self.offsets[i] + idx[:, i]] = 1.0
        return out

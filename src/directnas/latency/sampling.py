"""Uniform sampling of the architectures of a space whose predicted latency lies in a window
(random nets of a latency, for the random-search baseline, reference nets and the near-target
nets that re-anchor a table)."""

from __future__ import annotations

import numpy as np

from directnas.errors import UserError
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace


class ArchSampler:
    """Uniform sampling over the architectures whose predicted latency lies in the window.

    Rejection sampling of uniform per-layer draws finds nothing at a tight target (at 1.5x the
    fastest net, fewer than one in 2000 uniform draws lands near T), so the sampler counts
    instead: a dynamic programme over layers gives, on a fine latency grid, how many
    architectures reach every partial latency, and each draw walks back through those counts --
    every architecture in the window is equally likely (up to the grid; a draw that the exact
    sum puts outside the window is drawn again).  Without a target it is uniform per layer.

    ``weights`` (one row per layer, e.g. the search's probabilities): an architecture is drawn
    with probability proportional to the product of its ops' weights instead (the same walk,
    counting weighted ways): the search's own distribution restricted to the window."""

    def __init__(self, space: SearchSpace, table: LatencyTable, *, target_ms: float | None,
                 tolerance: float | None, seed: int, bins: int = 4000,
                 weights: list[list[float]] | None = None, low_ms: float | None = None) -> None:
        self.space = space
        fixed, per_layer = table.space_latencies(space)
        self.fixed, self.per_layer = fixed, [np.asarray(r, dtype=np.float64) for r in per_layer]
        self.uniform = weights is None
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights] if weights is not None \
            else [np.ones(len(r)) for r in self.per_layer]
        if len(self.weights) != len(self.per_layer) or any(
                w.shape != r.shape or not np.all(w >= 0) or not w.any()
                for w, r in zip(self.weights, self.per_layer)):
            raise ValueError("weights need one non-negative, non-zero row per layer, one per op")
        self.lo, self.hi = 0.0, np.inf
        if target_ms is not None:
            self.hi = target_ms * (1 + (tolerance or 0.0))
            self.lo = target_ms * (1 - tolerance) if tolerance is not None else 0.0
        if low_ms is not None:  # the window [low_ms, hi] (the search's [window * T, T])
            self.lo = low_ms
        self.rng = np.random.default_rng(seed)
        self.counts: list[np.ndarray] | None = None
        if np.isfinite(self.hi):
            self._count(bins)

    def _count(self, bins: int) -> None:
        budget = self.hi - self.fixed
        if budget < sum(float(r.min()) for r in self.per_layer):
            raise UserError(f"no architecture of space {self.space.name!r} is predicted at or below "
                            f"{self.hi:.3f} ms: raise --target-latency")
        self.res = budget / bins
        self.steps = [np.round(r / self.res).astype(np.int64) for r in self.per_layer]
        counts = [np.zeros(bins + 1)]
        counts[0][0] = 1.0
        for st, wt in zip(self.steps, self.weights):  # counts[l][b]: (weighted) archs of the
            c = np.zeros(bins + 1)                    # first l layers in bin b
            for s, w in zip(st, wt):
                if s <= bins and w > 0:
                    c[s:] += w * counts[-1][:bins + 1 - s]
            counts.append(c)
        self.counts = counts
        lo_bin = max(0, int(np.ceil((self.lo - self.fixed) / self.res)))
        self.window = np.arange(bins + 1) >= lo_bin
        if not (counts[-1] * self.window).any():
            raise UserError(f"no architecture of space {self.space.name!r} is predicted in "
                            f"[{self.lo:.3f}, {self.hi:.3f}] ms: move --target-latency or widen --tolerance")

    def latency_ms(self, ops: list[str]) -> float:
        return self.fixed + float(sum(r[l.candidates.index(op)] for r, l, op in
                                      zip(self.per_layer, self.space.layers, ops)))

    def _draw(self) -> list[int]:
        if self.counts is None:
            if self.uniform:
                return [int(self.rng.integers(len(r))) for r in self.per_layer]
            return [int(self.rng.choice(len(w), p=w / w.sum())) for w in self.weights]
        w = self.counts[-1] * self.window
        b = int(self.rng.choice(len(w), p=w / w.sum()))
        idx = [0] * len(self.steps)
        for l in range(len(self.steps) - 1, -1, -1):  # walk back: op j with weight counts[l][b - s_j]
            st = self.steps[l]
            ways = np.array([w * self.counts[l][b - s] if s <= b else 0.0
                             for s, w in zip(st, self.weights[l])])
            j = int(self.rng.choice(len(st), p=ways / ways.sum()))
            idx[l], b = j, b - int(st[j])
        return idx

    def sample(self, *, tries: int = 1000) -> Arch:
        for _ in range(tries):
            idx = self._draw()
            ops = [l.candidates[i] for l, i in zip(self.space.layers, idx)]
            if self.lo <= self.latency_ms(ops) <= self.hi:
                return Arch(self.space, ops)
        raise UserError(f"no architecture of space {self.space.name!r} found with predicted latency "
                        f"in [{self.lo:.3f}, {self.hi:.3f}] ms: widen --tolerance")

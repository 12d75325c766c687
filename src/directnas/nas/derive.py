"""Path-level pruning: pick one op per layer from the learned probabilities.

``argmax``: each layer's most probable op (the paper).  ``constrained`` (the default when a
target latency is given): the architecture with the highest joint probability
sum_l log p_l(op_l) whose predicted latency lies in [window * T, T] — the target is a budget,
and a net far below it leaves accuracy on the table.  ``macs``: the architecture with the most
multiply-accumulates in that window, the choice that needs no trained supernet (on
NAS-Bench-Macro it sits at the 72nd-98th percentile of its window's ground truth; BENCHMARKS.md),
and the search's fallback when its supernet has not learned.  Both are one problem, the best
additive per-layer score in the window, solved exactly by dynamic programming over layers on a
latency grid; if no architecture fits the window, the lower bound is dropped, and if none is
<= T, the fastest is returned.
"""

from __future__ import annotations

import numpy as np


def derive_constrained(probs: list[list[float]], latency_ms: list[list[float]], fixed_ms: float,
                       target_ms: float, *, window: float = 0.95,
                       resolution_ms: float | None = None) -> list[int]:
    """Indices (one per layer) maximising sum log p subject to window*T <= LAT <= T."""
    scores = [np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-30, None)) for p in probs]
    return best_in_window(scores, latency_ms, fixed_ms, target_ms, window=window,
                          resolution_ms=resolution_ms)


def derive_macs(mmacs: list[list[float]], latency_ms: list[list[float]], fixed_ms: float,
                target_ms: float, *, window: float = 0.95,
                resolution_ms: float | None = None) -> list[int]:
    """Indices (one per layer) maximising the net's MACs subject to window*T <= LAT <= T
    (``mmacs``: ``space.macs.layer_mmacs``)."""
    return best_in_window([np.asarray(m, dtype=np.float64) for m in mmacs], latency_ms, fixed_ms,
                          target_ms, window=window, resolution_ms=resolution_ms)


def best_in_window(scores: list[np.ndarray], latency_ms: list[list[float]], fixed_ms: float,
                   target_ms: float, *, window: float = 0.95,
                   resolution_ms: float | None = None) -> list[int]:
    """Indices (one per layer) maximising sum_l scores[l][op_l] subject to
    window*T <= fixed + sum_l latency[l][op_l] <= T."""
    budget = target_ms - fixed_ms
    n_layers = len(scores)
    if n_layers == 0:
        return []
    fastest = sum(min(l) for l in latency_ms)
    if budget < fastest:
        return [int(np.argmin(l)) for l in latency_ms]
    res = resolution_ms or max(budget / 4000.0, 1e-6)
    bins = int(np.floor(budget / res)) + 1
    neg = -np.inf
    # best[b] = max score of the layers so far with total latency in bin b
    best = np.full(bins, neg)
    best[0] = 0.0
    choice = np.zeros((n_layers, bins), dtype=np.int64)
    prev = np.zeros((n_layers, bins), dtype=np.int64)
    for li, (score, lat) in enumerate(zip(scores, latency_ms)):
        steps = np.round(np.asarray(lat, dtype=np.float64) / res).astype(np.int64)
        new = np.full(bins, neg)
        for j, (lp, s) in enumerate(zip(score, steps)):
            if s >= bins:
                continue
            cand = np.full(bins, neg)
            cand[s:] = best[:bins - s] + lp
            better = cand > new
            new[better] = cand[better]
            choice[li, better] = j
            prev[li, better] = np.nonzero(better)[0] - s
        best = new
    lo = int(np.ceil((window * target_ms - fixed_ms) / res))
    ok = np.isfinite(best)
    ok_window = ok.copy()
    ok_window[:max(lo, 0)] = False
    pool = ok_window if ok_window.any() else ok
    b = int(np.argmax(np.where(pool, best, neg)))
    out = [0] * n_layers
    for li in range(n_layers - 1, -1, -1):
        out[li] = int(choice[li, b])
        b = int(prev[li, b])
    return out

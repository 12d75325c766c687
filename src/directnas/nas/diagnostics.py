"""Has the search decided?  Per-layer entropy and largest probability, and seed agreement.

A search that has decided puts most of each layer's probability on one op (largest probability
near 1, entropy near 0); one whose probabilities stay near uniform hands path-level pruning a
coin toss.  Searches with different seeds that found something real derive the same ops: the
agreement of two derived nets is the fraction of layers with the same op.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence


def layer_entropy(p: Sequence[float]) -> float:
    """Entropy in nats of one layer's op distribution."""
    return -sum(x * math.log(x) for x in p if x > 0)


def decision(probs: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Per-layer largest probability and entropy (also normalised by log N), with their means."""
    pmax = [max(p) for p in probs]
    ent = [layer_entropy(p) for p in probs]
    norm = [e / math.log(len(p)) if len(p) > 1 else 0.0 for e, p in zip(ent, probs)]
    n = max(len(probs), 1)
    return {"max_prob": pmax, "entropy": ent, "mean_max_prob": sum(pmax) / n,
            "mean_entropy": sum(ent) / n, "mean_normalised_entropy": sum(norm) / n}


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """Fraction of layers on which two derived nets chose the same op."""
    if len(a) != len(b):
        raise ValueError(f"nets of {len(a)} and {len(b)} layers cannot be compared")
    return sum(x == y for x, y in zip(a, b)) / max(len(a), 1)


def seed_agreement(archs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Pairwise agreement of the derived nets of several seeds, and its mean."""
    pairs = [{"i": i, "j": j, "agreement": agreement(archs[i], archs[j])}
             for i, j in itertools.combinations(range(len(archs)), 2)]
    mean = sum(p["agreement"] for p in pairs) / len(pairs) if pairs else float("nan")
    per_layer = [len(set(col)) == 1 for col in zip(*archs)]
    return {"pairs": pairs, "mean_pairwise_agreement": mean,
            "layers_all_agree": sum(per_layer), "layers": len(per_layer)}

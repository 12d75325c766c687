"""Constrained derive: exact against brute force on small random cases."""

import itertools
import math
import random

import pytest

from directnas.nas.derive import derive_constrained


def brute(probs, lat, fixed, target, window):
    best = best_in_window = None
    for combo in itertools.product(*[range(len(p)) for p in probs]):
        total = fixed + sum(lat[i][c] for i, c in enumerate(combo))
        lp = sum(math.log(probs[i][c]) for i, c in enumerate(combo))
        if total <= target:
            if best is None or lp > best[0]:
                best = (lp, combo)
            if total >= window * target and (best_in_window is None or lp > best_in_window[0]):
                best_in_window = (lp, combo)
    return best_in_window or best


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force(seed):
    rng = random.Random(seed)
    probs, lat = [], []
    for _ in range(rng.randint(1, 4)):
        n = rng.randint(2, 4)
        w = [rng.random() + 0.01 for _ in range(n)]
        probs.append([x / sum(w) for x in w])
        lat.append([round(rng.uniform(0.1, 1.0), 3) for _ in range(n)])
    fixed = 0.2
    target = fixed + sum(min(l) for l in lat) + rng.uniform(0, 1.5)
    got = derive_constrained(probs, lat, fixed, target, resolution_ms=0.0005)
    ref = brute(probs, lat, fixed, target, 0.95)
    assert sum(math.log(probs[i][c]) for i, c in enumerate(got)) == pytest.approx(ref[0])


def test_infeasible_target_gives_the_fastest():
    assert derive_constrained([[0.9, 0.1]], [[2.0, 1.0]], 0.5, 1.0) == [1]

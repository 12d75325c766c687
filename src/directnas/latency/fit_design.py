"""Which networks to measure: Bayesian D-optimal and coverage designs.

Part of ``hardware.fit`` (whose docstring describes the models); import from there.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from directnas.errors import UserError
from directnas.latency.fit_features import Featurizer, _op_physics
from directnas.space.space import SearchSpace


# ---- which networks to measure --------------------------------------------------------------
def _dcrit(feat: Featurizer, idx: np.ndarray) -> float:
    x = feat.onehot(idx)
    x = np.hstack([np.ones((len(x), 1)), x])
    sign, logdet = np.linalg.slogdet(x.T @ x + 1e-2 * np.eye(x.shape[1]))
    return float(logdet)


DESIGNS = ("d-optimal", "coverage")
DESIGN_RIDGE = 10.0  # prior precision of the Bayesian D-criterion (the ridge the fit picks at ~200 nets)


def _check_design(criterion: str, n: int) -> None:
    if criterion not in DESIGNS:
        raise UserError(f"unknown design criterion {criterion!r}: use one of {', '.join(DESIGNS)}")
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")


def bayes_logdet(space: SearchSpace, idx: np.ndarray, ridge: float = DESIGN_RIDGE,
                 center: np.ndarray | None = None) -> float:
    """log det(X'X + ridge I) of the additive fit's (shared-term) features, centred (the fit's
    intercept is not penalised): the Bayesian D-criterion ``select_balanced`` maximises."""
    feat = Featurizer(space)
    x = feat(idx)
    x = x - (x.mean(0) if center is None else center)
    return float(np.linalg.slogdet(x.T @ x + ridge * np.eye(x.shape[1]))[1])


def _greedy_dopt(x: np.ndarray, n: int, ridge: float, rng: np.random.Generator,
                 cover: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``x`` (centred features) added one at a time, each maximising the gain in
    log det(X'X + ridge I), i.e. the largest posterior prediction variance x'A^-1 x (rank-one
    Sherman-Morrison updates; ties broken in a seeded random order).  With ``cover`` (one-hot
    (layer, op) rows), rows covering the most still-unused pairs come first while any is left."""
    a_inv = np.eye(x.shape[1]) / ridge
    var = (x * x).sum(1) / ridge
    free = np.ones(len(x), dtype=bool)
    order = rng.permutation(len(x))
    todo = None if cover is None else np.ones(cover.shape[1])
    chosen = []
    for _ in range(n):
        score = np.where(free, var, -np.inf)
        if todo is not None and todo.any():
            new = cover @ todo
            score = np.where(free & (new == new[free].max()), var, -np.inf)
        j = int(order[int(np.argmax(score[order]))])
        u = a_inv @ x[j]
        c = 1.0 + float(x[j] @ u)
        a_inv -= np.outer(u, u) / c
        var -= (x @ u) ** 2 / c
        free[j] = False
        if todo is not None:
            todo[cover[j] > 0] = 0.0
        chosen.append(j)
    return np.array(chosen)


def _latin(space: SearchSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows where every layer uses each candidate floor(n/k) or ceil(n/k) times."""
    cols = []
    for layer in space.layers:
        k = len(layer.candidates)
        col = np.concatenate([rng.permutation(k) for _ in range(math.ceil(n / k))])[:n]
        cols.append(rng.permutation(col))
    return np.stack(cols, axis=1)


CORNER_FRACTIONS = (0.0, 1 / 3, 2 / 3, 1.0)


def corner_design(space: SearchSpace, fractions: tuple[float, ...] = CORNER_FRACTIONS) -> np.ndarray:
    """Op-index rows from the space's fast corner to its slow corner: at fraction ``f`` every
    layer takes the candidate at position ``round(f * (k - 1))`` of its candidates ordered by
    multiply-accumulates and memory traffic (0: the fastest net, 1: the slowest), so a fit on
    them spans the whole range it will be asked to predict."""
    rows = []
    for f in fractions:
        row = []
        for layer in space.layers:
            cost = [_op_physics(layer, op)[:2] for op in layer.candidates]
            order = sorted(range(len(cost)), key=lambda i: cost[i])
            row.append(order[round(f * (len(order) - 1))])
        if row not in rows:
            rows.append(row)
    return np.array(rows, dtype=np.int64)


def calibration_design(space: SearchSpace, n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` op-index rows for calibrating a table: the corners (``corner_design``), then a
    D-optimal balanced design (``balanced_design``) for the rest."""
    corners = corner_design(space)[:n]
    if n <= len(corners):
        return corners
    return np.concatenate([corners, balanced_design(space, n - len(corners), seed=seed)])


def balanced_design(space: SearchSpace, n: int, *, seed: int = 0, tries: int = 20,
                    criterion: str = "d-optimal") -> np.ndarray:
    """``n`` op-index rows to time.  ``d-optimal`` (default): from ``tries`` randomised
    Latin-style designs of ``n`` rows each (every layer uses each candidate floor/ceil(n/k)
    times), greedily pick the ``n`` rows that maximise the Bayesian D-criterion of the additive
    fit's features (``bayes_logdet``), first covering every (layer, op) pair (if ``n`` allows).  ``coverage``: the most D-optimal (one-hot log det) of
    ``tries`` Latin-style designs, exactly balanced per layer."""
    _check_design(criterion, n)
    rng = np.random.default_rng(seed)
    if criterion == "d-optimal":
        cand = np.concatenate([_latin(space, n, rng) for _ in range(max(2, tries))])
        cand = np.unique(cand, axis=0)
        x = Featurizer(space)(cand)
        cover = Featurizer(space, shared=False).onehot(cand)
        return cand[_greedy_dopt(x - x.mean(0), n, DESIGN_RIDGE, rng, cover)]
    feat = Featurizer(space, shared=False)
    best, best_d = None, -np.inf
    for _ in range(max(1, tries)):
        d = _latin(space, n, rng)
        crit = _dcrit(feat, d)
        if crit > best_d:
            best, best_d = d, crit
    assert best is not None
    return best


def select_balanced(space: SearchSpace, pool: np.ndarray, n: int, *, seed: int = 0,
                    criterion: str = "d-optimal") -> np.ndarray:
    """Row numbers of ``pool`` (already measurable archs) to time.  ``d-optimal`` (default):
    greedy Bayesian D-optimal rows for the additive fit's features (``bayes_logdet``; features
    centred on the pool).  ``coverage``: greedily add the row whose (layer, op) pairs are least
    covered so far."""
    _check_design(criterion, n)
    if n > len(pool):
        raise UserError(f"cannot choose {n} networks from a pool of {len(pool)}")
    rng = np.random.default_rng(seed)
    if criterion == "d-optimal":
        x = Featurizer(space)(pool)
        return _greedy_dopt(x - x.mean(0), n, DESIGN_RIDGE, rng)
    feat = Featurizer(space, shared=False)
    onehot = feat.onehot(pool)
    counts = np.zeros(onehot.shape[1])
    free = np.ones(len(pool), dtype=bool)
    order = rng.permutation(len(pool))
    chosen = []
    for _ in range(n):
        score = onehot[order] @ counts
        score[~free[order]] = np.inf
        j = order[int(np.argmin(score))]
        chosen.append(j)
        free[j] = False
        counts += onehot[j]
    return np.array(chosen)


def design_rows(space: SearchSpace, idx: np.ndarray) -> list[dict[str, Any]]:
    """The archs list format (shared with the on-device timing script)."""
    return [{"arch_id": i, "op_idx_list": [int(v) for v in row],
             "ops": [l.candidates[int(v)] for l, v in zip(space.layers, row)]}
            for i, row in enumerate(idx)]

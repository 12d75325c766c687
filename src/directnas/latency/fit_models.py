"""The latency models: additive ridge/robust fits, boosted trees on the residual, cross-validated
selection, and the fitted model as a latency table.

Part of ``hardware.fit`` (whose docstring describes the models); import from there.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from directnas.errors import UserError
from directnas.latency.fit_data import op_indices
from directnas.latency.fit_features import Featurizer
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace, op_key

log = logging.getLogger(__name__)

MODELS = ("ls", "additive", "robust", "additive+gbm", "robust+gbm", "auto")
AUTO_CANDIDATES = ("additive", "robust", "robust+gbm")  # simplest first
LAYER_PREFIX = "L{index}:"
ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))


# ---- additive fits -------------------------------------------------------------------------
@dataclass
class Additive:
    """constant + term[layer][op] (ms)."""

    constant: float
    terms: list[list[float]]
    info: dict[str, Any]

    def predict(self, idx: np.ndarray) -> np.ndarray:
        out = np.full(idx.shape[0], self.constant)
        for i, row in enumerate(self.terms):
            out += np.asarray(row)[idx[:, i]]
        return out


def _ridge_gcv(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
               alpha: float | None = None) -> tuple[np.ndarray, float, float]:
    """Weighted ridge with intercept; alpha by generalised cross-validation unless given."""
    w = np.ones(len(y)) if w is None else w
    sw = np.sqrt(w / w.mean())
    xm = (x * w[:, None]).sum(0) / w.sum()
    ym = float((y * w).sum() / w.sum())
    xc, yc = (x - xm) * sw[:, None], (y - ym) * sw
    if alpha is not None:  # normal equations: cheap inside IRLS
        coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
        return coef, ym - float(xm @ coef), alpha
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uy = u.T @ yc
    best = None
    for a in ALPHAS:
        f = s ** 2 / (s ** 2 + a)
        resid = yc - u @ (f * uy)
        dof = len(y) - f.sum()
        gcv = float((resid ** 2).mean() / max(dof / len(y), 1e-9) ** 2)
        if best is None or gcv < best[0]:
            best = (gcv, a)
    a = best[1]
    coef = vt.T @ (s / (s ** 2 + a) * uy)
    return coef, ym - float(xm @ coef), a


def _to_additive(feat: Featurizer, coef: np.ndarray, intercept: float,
                 info: dict[str, Any]) -> Additive:
    """Fold a linear model in the features into per-layer terms; shift every layer so its
    cheapest op costs 0 (the constant absorbs it: predictions are unchanged, terms >= 0)."""
    terms, const = [], intercept
    for t in feat.table:
        row = (t * feat.scale) @ coef
        m = float(row.min())
        terms.append([float(v - m) for v in row])
        const += m
    if const < 0:  # an extrapolation artefact of small fits: take it out of the layers' terms
        log.info("fitted constant %.3f ms < 0: spread over the layers' terms", const)
        share = -const / len(terms)
        terms = [[max(v - share, 0.0) for v in row] for row in terms]
        const = 0.0
    return Additive(const, terms, info)


def fit_ls(feat: Featurizer, idx: np.ndarray, y: np.ndarray) -> Additive:
    """Plain least squares on the one-hot table (minimum-norm solution)."""
    x = np.hstack([np.ones((len(y), 1)), feat.onehot(idx)])
    sol, *_ = np.linalg.lstsq(x, y, rcond=None)
    terms, const = [], float(sol[0])
    for i in range(len(feat.table)):
        row = sol[1 + feat.offsets[i]:1 + feat.offsets[i + 1]]
        m = float(row.min())
        terms.append([float(v - m) for v in row])
        const += m
    return Additive(const, terms, {"method": "least squares"})


def fit_additive(feat: Featurizer, idx: np.ndarray, y: np.ndarray, *,
                 robust: bool = False, iters: int = 15) -> Additive:
    x = feat(idx)
    coef, b, alpha = _ridge_gcv(x, y)
    if not robust:
        return _to_additive(feat, coef, b, {"method": "ridge (GCV)", "alpha": alpha})
    # IRLS for min sum |r| / y: weights 1 / (y * max(|r|, eps))
    eps = 1e-3 * float(np.median(y))
    for _ in range(iters):
        r = y - (x @ coef + b)
        w = 1.0 / (y * np.maximum(np.abs(r), eps))
        coef, b, _ = _ridge_gcv(x, y, w, alpha)
    return _to_additive(feat, coef, b, {"method": "robust relative-error (IRLS ridge)",
                                        "alpha": alpha, "iterations": iters})


# ---- non-additive: boosted trees on the relative residual, stored as plain lists ------------
def fit_trees(feat: Featurizer, idx: np.ndarray, y: np.ndarray, base: np.ndarray, *,
              n_trees: int = 100, depth: int = 3, lr: float = 0.05, seed: int = 0,
              loss: str = "huber") -> dict[str, Any]:
    """Boosted trees on the relative residual ``y / base - 1``.  ``loss="absolute_error"``
    minimises the mean absolute relative error of ``base * (1 + g)`` (used on the robust base)."""
    from sklearn.ensemble import GradientBoostingRegressor

    x = feat.onehot(idx)
    r = y / base - 1.0
    m = GradientBoostingRegressor(loss=loss, n_estimators=n_trees, max_depth=depth,
                                  learning_rate=lr, subsample=0.8, random_state=seed)
    m.fit(x, r)
    trees = []
    for est in m.estimators_[:, 0]:
        t = est.tree_
        trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                      "feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                      "value": t.value[:, 0, 0].tolist()})
    init = float(np.asarray(m.init_.predict(x[:1])).ravel()[0])
    return {"kind": "gbm-relative", "features": "onehot", "loss": loss, "init": init,
            "learning_rate": lr, "trees": trees}


def predict_trees(model: dict[str, Any], feat: Featurizer, idx: np.ndarray) -> np.ndarray:
    """The relative correction g(arch) (so latency = additive * (1 + g))."""
    x = feat.onehot(idx)
    out = np.full(len(x), float(model["init"]))
    rows = np.arange(len(x))
    for t in model["trees"]:
        left, right = np.asarray(t["left"]), np.asarray(t["right"])
        feature, thr, val = np.asarray(t["feature"]), np.asarray(t["threshold"]), np.asarray(t["value"])
        node = np.zeros(len(x), dtype=np.int64)
        for _ in range(64):
            leaf = left[node] == -1
            if leaf.all():
                break
            go_left = x[rows, np.where(leaf, 0, feature[node])] <= thr[node]
            nxt = np.where(go_left, left[node], right[node])
            node = np.where(leaf, node, nxt)
        out += float(model["learning_rate"]) * val[node]
    return out


# ---- a fitted model = additive (+ trees) --------------------------------------------------
@dataclass
class FittedModel:
    name: str
    additive: Additive
    trees: dict[str, Any] | None = None

    def predict(self, feat: Featurizer, idx: np.ndarray) -> np.ndarray:
        base = self.additive.predict(idx)
        if self.trees is None:
            return base
        return base * (1.0 + predict_trees(self.trees, feat, idx))


def _fit_named(name: str, feat: Featurizer, idx: np.ndarray, y: np.ndarray) -> FittedModel:
    if name == "ls":
        return FittedModel(name, fit_ls(feat, idx, y))
    robust = name.startswith("robust")
    add = fit_additive(feat, idx, y, robust=robust)
    trees = None
    if name.endswith("+gbm"):  # the trees minimise the same loss as their base
        trees = fit_trees(feat, idx, y, add.predict(idx),
                          loss="absolute_error" if robust else "huber")
    return FittedModel(name, add, trees)


def metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from scipy.stats import kendalltau

    tau = float(kendalltau(pred, y)[0]) if len(y) > 1 else float("nan")
    return {"samples": int(len(y)), "mape": float(np.mean(np.abs(pred - y) / y)),
            "rmse_ms": float(np.sqrt(np.mean((pred - y) ** 2))),
            "kendall_tau": tau if math.isfinite(tau) else 0.0}


def cross_validate(name: str, feat: Featurizer, idx: np.ndarray, y: np.ndarray,
                   folds: int = 4) -> np.ndarray:
    """Blocked (contiguous) k-fold: the MAPE of each held-out block, fitted on the others.
    Contiguous blocks mimic a later measuring session (devices drift while being timed)."""
    bounds = np.linspace(0, len(y), folds + 1).astype(int)
    errs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        tr = np.r_[0:a, b:len(y)]
        m = _fit_named(name, feat, idx[tr], y[tr])
        errs.append(float(np.mean(np.abs(m.predict(feat, idx[a:b]) - y[a:b]) / y[a:b])))
    return np.array(errs)


def choose_model(cv: dict[str, np.ndarray]) -> str:
    """The first (simplest) model whose per-fold MAPE is within one paired standard error of
    the lowest-mean model's (the one-standard-error rule, on fold-wise differences)."""
    best = min(cv, key=lambda k: float(cv[k].mean()))
    for name, errs in cv.items():
        diff = errs - cv[best]
        se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else 0.0
        if float(diff.mean()) <= se:
            return name
    return best


def fit_model(space: SearchSpace, idx: np.ndarray, y: np.ndarray, model: str = "additive",
              *, candidates: Sequence[str] = AUTO_CANDIDATES, folds: int = 4) -> FittedModel:
    """Fit ``model`` on these rows; ``auto`` chooses by cross-validation on these rows only."""
    if model not in MODELS:
        raise UserError(f"unknown latency model {model!r}: use one of {', '.join(MODELS)}")
    bad = [c for c in candidates if c not in MODELS or c == "auto"]
    if bad or not candidates:
        raise UserError(f"auto model candidates {bad or '(none)'} invalid: use some of "
                        f"{', '.join(m for m in MODELS if m != 'auto')}")
    n_params = int(sum(len(l.candidates) - 1 for l in space.layers)) + 1
    if len(y) < 10:
        raise UserError(f"fitting needs at least 10 measured networks, got {len(y)}")
    if model == "auto" and not 2 <= folds <= len(y) // 5:
        raise UserError(f"auto model: {folds} cross-validation folds for {len(y)} networks; "
                        f"need 2 <= folds <= networks / 5")
    if model == "ls" and len(y) < n_params:
        log.warning("least squares with %d networks for %d parameters is underdetermined: "
                    "use --model additive (ridge with shared terms)", len(y), n_params)
    feat = Featurizer(space, shared=model != "ls")
    if model != "auto":
        return _fit_named(model, feat, idx, y)
    cv = {name: cross_validate(name, feat, idx, y, folds) for name in candidates}
    chosen = choose_model(cv)
    log.info("auto model: blocked %d-fold CV MAPE %s -> %s", folds,
             ", ".join(f"{k} {v.mean():.4f}" for k, v in cv.items()), chosen)
    fitted = _fit_named(chosen, feat, idx, y)
    fitted.additive.info["auto"] = {"chosen": chosen, "folds": folds,
                                    "cv_mape": {k: float(v.mean()) for k, v in cv.items()},
                                    "cv_mape_folds": {k: v.tolist() for k, v in cv.items()}}
    return fitted


# ---- tables ---------------------------------------------------------------------------------
def layer_key(index: int, key: str) -> str:
    return LAYER_PREFIX.format(index=index) + key


def to_table(space: SearchSpace, fitted: FittedModel, meta: dict[str, Any]) -> LatencyTable:
    """A LatencyTable pricing every Arch of ``space``: ``L{i}:<op key>`` entries per layer (the
    lookup prefers them), plain ``<op key>`` entries = the mean over layers (for tools that read
    op keys only), the constant on the stem entry (stem + head + runtime overhead)."""
    entries: dict[str, dict[str, float]] = {}
    fixed = space.fixed_keys()
    for k in fixed:
        entries[k] = {"ms": 0.0}
    entries[fixed[0]] = {"ms": float(fitted.additive.constant)}
    shared: dict[str, list[float]] = {}
    for layer, row in zip(space.layers, fitted.additive.terms):
        for op, ms in zip(layer.candidates, row):
            key = op_key(op, layer.c_in, layer.c_out, layer.stride, layer.hw_in)
            entries[layer_key(layer.index, key)] = {"ms": float(ms)}
            shared.setdefault(key, []).append(float(ms))
    for key, vals in shared.items():
        entries[key] = {"ms": float(np.mean(vals))}
    entries.pop("zero", None)
    full_meta = {"backend": "fitted", **meta, "space": space.to_dict(),
                 "fit": {"model": fitted.name, **fitted.additive.info,
                         "constant_ms": fitted.additive.constant}}
    if fitted.trees is not None:
        full_meta["nonadditive"] = fitted.trees
    return LatencyTable(full_meta, entries)


def table_space(table: LatencyTable, space: SearchSpace | None = None) -> SearchSpace:
    if space is not None:
        return space
    d = table.meta.get("space")
    if not isinstance(d, dict):
        raise UserError("this latency table does not name its space: pass --space")
    return SearchSpace.from_dict(d)


def predict_table(table: LatencyTable, space: SearchSpace, idx: np.ndarray) -> np.ndarray:
    """Whole-network latency (ms) of op-index rows from a table: its per-layer entries (and
    correction) via ``space_latencies``, times ``1 + g`` if it holds a non-additive model."""
    fixed, per_layer = table.space_latencies(space)
    pred = np.full(idx.shape[0], float(fixed))
    for i, row in enumerate(per_layer):
        pred += np.asarray(row)[idx[:, i]]
    trees = table.meta.get("nonadditive")
    if trees:
        pred *= 1.0 + predict_trees(trees, Featurizer(space, shared=False), idx)
    return pred


def predict_arch_total_ms(arch: Arch, table: LatencyTable) -> float:
    return float(predict_table(table, arch.space, np.array([op_indices(arch)]))[0])

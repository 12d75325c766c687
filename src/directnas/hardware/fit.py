"""Fit a latency table from whole-network measurements (devices you cannot profile op by op).

Model: ``latency(arch) = constant + sum over layers of term[layer, op]`` (a per-layer table the
search uses as is), optionally times ``1 + g(arch)`` where ``g`` is a non-additive model of the
relative residual (gradient-boosted trees on the one-hot ops, stored as plain JSON).

The additive part is linear in per-(layer, op) features summed over layers, so any linear fit
in those features is again a per-(layer, op) table.  Features of ``(layer, op)``:
  * the one-hot (layer, op) indicator (the plain table),
  * a one-hot (layer shape, op) indicator shared by layers of equal shape (borrows strength),
  * a one-hot op indicator shared by all layers,
  * per stage: MACs, activation traffic, number of convolutions and "is not the identity"
    of the op at the layer (a small physics prior).
With many measurements the ridge penalty (picked by generalised cross-validation) goes to ~0
and the fit equals plain least squares; with few it shrinks towards the shared terms.

Fits (``MODELS``):
  * ``ls``: plain least squares on the one-hot table (the textbook baseline);
  * ``additive``: the ridge fit above (squared error);
  * ``robust``: the same features, minimising the mean absolute *relative* error (MAPE) by
    iteratively reweighted ridge: robust to the slow drift and outliers of phone timings;
  * ``additive+gbm`` / ``robust+gbm``: the additive fit times ``1 + trees(arch)``;
  * ``auto``: per device, blocked k-fold cross-validation on the given (training) rows only
    picks among ``AUTO_CANDIDATES``: the simplest model whose CV MAPE is within one paired
    standard error of the best (so a more complex model must win clearly to be chosen).

Measurements are CSV rows with either ``op_idx_list`` (space-separated indices into each
layer's candidate list; for ``fbnet-cifar100`` that is HW-NAS-Bench/HELP's op order) or
``ops`` (space-separated op names), plus one latency column in ms.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from directnas.errors import UserError
from directnas.hardware.lut import LatencyTable
from directnas.space.arch import Arch
from directnas.space.ops import SKIP, parse_op
from directnas.space.space import LayerSpec, SearchSpace, op_key

log = logging.getLogger(__name__)

FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
MODELS = ("ls", "additive", "robust", "additive+gbm", "robust+gbm", "auto")
AUTO_CANDIDATES = ("additive", "robust", "robust+gbm")  # simplest first
LAYER_PREFIX = "L{index}:"
ALPHAS = tuple(float(a) for a in np.logspace(-4, 3, 15))


# ---- architectures <-> op indices ------------------------------------------------------------
def arch_from_op_indices(space: SearchSpace, indices: Sequence[int]) -> Arch:
    """The Arch of one ``op_idx_list`` row: index ``i`` of layer ``l`` = ``l``'s i-th candidate."""
    if len(indices) != len(space.layers):
        raise UserError(f"op_idx_list has {len(indices)} entries but space {space.name!r} has "
                        f"{len(space.layers)} searchable layers: use the matching space")
    ops = []
    for layer, i in zip(space.layers, indices):
        if not 0 <= int(i) < len(layer.candidates):
            raise UserError(f"op index {i} at layer {layer.index} is out of range "
                            f"(0..{len(layer.candidates) - 1}) for space {space.name!r}")
        ops.append(layer.candidates[int(i)])
    return Arch(space, ops)


def op_indices(arch: Arch) -> list[int]:
    return [layer.candidates.index(op) for layer, op in zip(arch.space.layers, arch.ops)]


def parse_rows(spec: str | None) -> tuple[int, int | None]:
    """``"A:B"`` -> (A, B): data rows A inclusive to B exclusive, 0-based; None = all."""
    if not spec:
        return 0, None
    try:
        a, b = spec.split(":")
        lo = int(a) if a.strip() else 0
        hi = int(b) if b.strip() else None
    except ValueError:
        raise UserError(f"--rows {spec!r} is not A:B (e.g. 0:4000)") from None
    if lo < 0 or (hi is not None and hi <= lo):
        raise UserError(f"--rows {spec!r} must satisfy 0 <= A < B")
    return lo, hi


@dataclass
class Measurements:
    """Op-index matrix (N, layers), latency (N,) in ms, and the CSV's arch ids."""

    idx: np.ndarray
    ms: np.ndarray
    arch_ids: list[str]


def read_measurements(path: str | Path, space: SearchSpace, column: str,
                      rows: tuple[int, int | None] = (0, None)) -> Measurements:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"measurements file {path} does not exist: give a CSV of architectures "
                        "and latencies (see docs/latency-fit.md)")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if column not in fields:
            raise UserError(f"measurements {path} have no column {column!r}; columns: "
                            f"{', '.join(c for c in fields if c not in ('op_idx_list', 'ops', 'arch_id'))}")
        if "op_idx_list" not in fields and "ops" not in fields:
            raise UserError(f"measurements {path} need an 'op_idx_list' or an 'ops' column")
        data = list(reader)
    lo, hi = rows
    hi = len(data) if hi is None else hi
    if hi > len(data):
        raise UserError(f"--rows {lo}:{hi} goes past the {len(data)} data rows of {path}")
    sel = data[lo:hi]
    idx, ms, ids = [], [], []
    for n, r in enumerate(sel, start=lo):
        try:
            if r.get("op_idx_list"):
                ind = [int(v) for v in r["op_idx_list"].replace(",", " ").split()]
            else:
                ind = op_indices(Arch(space, r["ops"].split()))
            val = float(r[column])
        except (ValueError, TypeError):
            raise UserError(f"measurements {path}: data row {n} is malformed (op list or "
                            f"{column!r})") from None
        arch_from_op_indices(space, ind)  # validates
        if not math.isfinite(val) or val <= 0:
            raise UserError(f"measurements {path}: data row {n} has latency {val!r}; need > 0 ms")
        idx.append(ind)
        ms.append(val)
        ids.append(r.get("arch_id", str(n)))
    if not idx:
        raise UserError(f"measurements {path}: no data rows selected by --rows {lo}:{hi}")
    return Measurements(np.array(idx, dtype=np.int64), np.array(ms, dtype=float), ids)


# ---- features ------------------------------------------------------------------------------
def _op_physics(layer: LayerSpec, op: str) -> tuple[float, float, float, float]:
    """(MMACs, activation traffic / 1e5 elements, convs, not identity) of ``op`` at ``layer``."""
    hw, ho, ci, co = layer.hw_in, layer.hw_out, layer.c_in, layer.c_out
    if op == SKIP:
        if ci == co and layer.stride == 1:
            return 0.0, 0.0, 0.0, 0.0
        return ho * ho * ci * co / 1e6, (hw * hw * ci + ho * ho * co) / 1e5, 1.0, 1.0
    spec = parse_op(op)
    if spec is None:  # zero
        return 0.0, 0.0, 0.0, 0.0
    mid = ci * spec.expand
    macs = (hw * hw * ci * mid / spec.groups if spec.expand != 1 else 0.0)
    macs += ho * ho * mid * spec.kernel ** 2 + ho * ho * mid * co / spec.groups
    traffic = hw * hw * ci + (hw * hw * mid if spec.expand != 1 else 0) + ho * ho * (mid + co)
    return macs / 1e6, traffic / 1e5, 3.0 if spec.expand != 1 else 2.0, 1.0


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

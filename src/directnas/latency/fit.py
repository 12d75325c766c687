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

The code lives in modules with one job each, re-exported here: ``fit_data`` (measurements),
``fit_features``, ``fit_models`` (fits, cross-validated selection, tables) and ``fit_design``
(which networks to measure).
"""

from __future__ import annotations

from directnas.latency.fit_data import (  # noqa: F401
    FBNET_OPS,
    Measurements,
    arch_from_op_indices,
    op_indices,
    parse_rows,
    read_measurements)
from directnas.latency.fit_features import (  # noqa: F401
    Featurizer,
    _op_physics)
from directnas.latency.fit_models import (  # noqa: F401
    ALPHAS,
    AUTO_CANDIDATES,
    Additive,
    FittedModel,
    LAYER_PREFIX,
    MODELS,
    _fit_named,
    _ridge_gcv,
    _to_additive,
    choose_model,
    cross_validate,
    fit_additive,
    fit_ls,
    fit_model,
    fit_trees,
    layer_key,
    metrics,
    predict_arch_total_ms,
    predict_table,
    predict_trees,
    table_space,
    to_table)
from directnas.latency.fit_design import (  # noqa: F401
    DESIGNS,
    DESIGN_RIDGE,
    _check_design,
    _dcrit,
    _greedy_dopt,
    _latin,
    balanced_design,
    bayes_logdet,
    design_rows,
    select_balanced)

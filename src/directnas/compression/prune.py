"""Magnitude pruning: per-layer sparsity from a sensitivity analysis, iterative prune + retrain.

Masks are ``torch.nn.utils.prune`` re-parametrisations during retraining; they are removed
(``prune.remove``) at the end so the saved net is a plain one whose pruned weights are zeros.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune as tprune

from directnas.compression.finetune import accuracy, finetune, weight_layers
from directnas.compression.state import State
from directnas.errors import UserError

log = logging.getLogger(__name__)

SPARSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


def magnitude_mask(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``round((1 - sparsity) * n)`` largest |w| (exact count; ties broken by topk)."""
    n = w.numel()
    keep = n - int(round(sparsity * n))
    mask = torch.zeros(n, dtype=w.dtype)
    if keep > 0:
        mask[w.detach().abs().flatten().topk(keep).indices] = 1
    return mask.view_as(w)


@torch.no_grad()
def sensitivity(net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                sparsities: tuple[float, ...] = SPARSITIES) -> dict[str, list[float]]:
    """Accuracy when pruning one layer alone at each sparsity (the others untouched)."""
    curves: dict[str, list[float]] = {}
    for name, m in weight_layers(net):
        w0 = m.weight.detach().clone()
        curves[name] = []
        for s in sparsities:
            m.weight.copy_(w0 * magnitude_mask(w0, s))
            curves[name].append(accuracy(net, batches))
        m.weight.copy_(w0)
        log.info("sensitivity %s: %s", name, " ".join(f"{a:.3f}" for a in curves[name]))
    return curves


def _at(curve: list[float], sparsities: tuple[float, ...], tol: float) -> float:
    """Largest sparsity whose (monotone) accuracy drop is <= tol, linearly interpolated."""
    drops, worst = [], 0.0
    for a in curve:
        worst = max(worst, curve[0] - a)
        drops.append(worst)
    i = max(j for j, d in enumerate(drops) if d <= tol)
    if i == len(drops) - 1:
        return sparsities[-1]
    d0, d1 = drops[i], drops[i + 1]
    return sparsities[i] + (tol - d0) / (d1 - d0) * (sparsities[i + 1] - sparsities[i])


def _per_weight(curves: dict[str, list[float]], sizes: dict[str, int],
                sparsities: tuple[float, ...]) -> Callable[[float], dict[str, float]]:
    """Sparsities at price ``lam``: each layer minimises its drop minus ``lam`` times the share of
    all weights it removes (a Lagrangian of "least summed drop for this many weights removed")."""
    total = sum(sizes.values())
    grid = np.linspace(0.0, sparsities[-1], 991)
    drops = {n: np.interp(grid, sparsities, np.maximum.accumulate(c[0] - np.asarray(c)))
             for n, c in curves.items()}

    def at(lam: float) -> dict[str, float]:
        return {n: float(grid[np.argmin(d - lam * grid * sizes[n] / total)])
                for n, d in drops.items()}
    return at


def choose_sparsities(curves: dict[str, list[float]], sizes: dict[str, int], *,
                      tolerance: float, target: float | None,
                      sparsities: tuple[float, ...] = SPARSITIES,
                      allocation: str = "equal-drop") -> dict[str, float]:
    """Per-layer sparsity for the overall ``target``.

    ``equal-drop``: the drop each layer alone may cost is ``tolerance``, or the common tolerance
    (bisection) that makes the overall sparsity ``target``.  ``per-weight``: the sparsities that
    remove ``target`` of all weights for the least summed drop, so a small layer (a classifier)
    that saves few weights is pruned less than a large one at the same drop.
    """
    def overall(s: dict[str, float]) -> float:
        return sum(s[n] * sizes[n] for n in s) / sum(sizes.values())

    if allocation == "per-weight":
        if target is None:
            raise UserError("--allocation per-weight needs --sparsity S (the overall target)")
        at = _per_weight(curves, sizes, sparsities)
        hi_start = 1e9
    elif allocation == "equal-drop":
        def at(tol: float) -> dict[str, float]:
            return {n: _at(c, sparsities, tol) for n, c in curves.items()}
        hi_start = 1.0
        if target is None:
            return at(tolerance)
    else:
        raise UserError(f"unknown --allocation {allocation!r}: use equal-drop or per-weight")
    if overall(at(hi_start)) < target:
        raise UserError(f"--sparsity {target} is above the {sparsities[-1]} cap of every layer: "
                        "ask for less")
    lo, hi = 0.0, hi_start
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if overall(at(mid)) >= target else (mid, hi)
    s = at(hi)
    scale = target / max(overall(s), 1e-12)  # trim the overshoot of a jump in a flat curve
    return {n: v * scale for n, v in s.items()}


def plot_sensitivity(curves: dict[str, list[float]], path: Path,
                     sparsities: tuple[float, ...] = SPARSITIES) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, acc in curves.items():
        ax.plot(sparsities, [100 * a for a in acc], marker="o", ms=3, label=name)
    ax.set_xlabel("sparsity of the layer alone")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("pruning sensitivity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def apply_masks(net: nn.Module, targets: dict[str, float]) -> None:
    """(Re)prune every layer to its sparsity by magnitude, as a torch prune re-parametrisation."""
    for name, m in weight_layers(net):
        if name not in targets:
            continue
        if tprune.is_pruned(m):
            tprune.remove(m, "weight")
        tprune.custom_from_mask(m, "weight", magnitude_mask(m.weight, targets[name]))


def remove_masks(net: nn.Module) -> None:
    for _, m in weight_layers(net):
        if tprune.is_pruned(m):
            tprune.remove(m, "weight")


def run(state: State) -> None:
    cfg, net = state.cfg, state.net
    layers = weight_layers(net)
    sizes = {n: m.weight.numel() for n, m in layers}
    if cfg.layer_sparsity is not None:  # chosen by the recipe search (compress.recipe)
        targets = {n: cfg.layer_sparsity.get(n, 0.0) for n in sizes}
    elif cfg.uniform:
        if cfg.sparsity is None:
            raise UserError("uniform pruning needs --sparsity S (a fraction in (0, 1))")
        targets = {n: cfg.sparsity for n in sizes}
    else:
        curves = sensitivity(net, state.valid())
        plot_sensitivity(curves, state.out / "sensitivity.png")
        targets = choose_sparsities(curves, sizes, tolerance=cfg.tolerance, target=cfg.sparsity,
                                     allocation=cfg.allocation)
        state.report["sensitivity"] = {"sparsities": list(SPARSITIES), "accuracy": curves,
                                       "plot": "sensitivity.png"}
    log.info("prune targets: %s", {n: round(s, 3) for n, s in targets.items()})
    for step in range(1, cfg.prune_steps + 1):
        # geometric schedule of the density: each round removes the same share of what is left
        frac = step / cfg.prune_steps
        apply_masks(net, {n: 1 - (1 - s) ** frac for n, s in targets.items()})
        finetune(net, state.data, cfg.finetune, progress=state.progress,
                 desc=f"prune {step}/{cfg.prune_steps}")
    remove_masks(net)
    zeros = {n: int((m.weight == 0).sum()) for n, m in layers}
    for n in sizes:
        state.note(n, sparsity=zeros[n] / sizes[n], target_sparsity=targets[n])
    state.report["prune"] = {"targets": targets,
                             "sparsity": sum(zeros.values()) / sum(sizes.values())}

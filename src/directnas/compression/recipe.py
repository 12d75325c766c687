"""Choose the compression recipe: a sparsity and a bit width per layer.

Two ways to ask (``directnas compress --target-ratio R`` / ``--max-loss P``):

* ``target_ratio``: the settings with the least predicted accuracy drop whose encoded file is at
  most ``size_before / R`` bytes;
* ``max_loss``: the largest ratio whose *probe* loses at most ``P`` points, where a probe applies
  the settings of one ratio, retrains briefly (``probe_steps`` steps) and scores the training
  images the sensitivity uses, against a *control* probe (the same retraining of the uncompressed
  net: a short retraining at the fine-tuning LR moves a converged net by about a point by
  itself); a ladder of ratios is bisected, assuming the loss grows with the ratio.

Both rest on per-layer curves, each measured with one layer changed and the rest untouched (no
retraining): the pruning sensitivity (``prune.sensitivity``) and the same for k-means weight
sharing at each bit width.  The drop of a layer's option (sparsity s, bits b) is predicted as
drop_prune(s) + drop_share(b), the drop of a net as the sum over layers.  The size of an option is
the real ``.dnz`` payload of the layer pruned by magnitude to s and clustered to 2**b values
(plus the file's other tensors and header, fixed), so the chooser minimises the summed drop
under a byte budget: a Lagrangian over the options, bisected on its price.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from directnas.compression.codec import _encode_tensor, encode_state
from directnas.compression.finetune import accuracy, finetune, layer_kind, weight_layers
from directnas.compression.prune import SPARSITIES, apply_masks, magnitude_mask, remove_masks, sensitivity
from directnas.compression.state import State
from directnas.errors import UserError

log = logging.getLogger(__name__)

BITS = (2, 3, 4, 5, 6, 8)
# the sparsities a layer may get: the measured points and, between them, steps of 0.01 (the drop
# interpolated linearly)
GRID = tuple(sorted(set(SPARSITIES) | {round(0.5 + 0.01 * i, 2) for i in range(50)}))
# the file the chain writes is ~8.5 % larger than the estimate (LeNet-300-100 at 40x: 27034 bytes
# against 24912): retrained weights fill the k-means clusters more evenly (longer Huffman codes)
# and their masks are less clustered (longer gaps).  A recipe aims this much higher.
MARGIN = 1.10
# geometric bisections between the last ladder rung a --max-loss probe kept and the first it
# refused (2: the ratio is resolved to 1.15 ** (1 / 4), about 3.6 %)
REFINE = 2
# weight of the distortion beside the measured drop.  The curves resolve one image in
# --valid-images (5e-4 at 2000), so settings below that read as free, and with no price on them
# the chooser took the smallest of them at any budget: on the 26-epoch demo net that "free"
# recipe was 10.9x and its probe lost 1.35 points, and --max-loss could not go below it.  1e-4
# per unit of relative squared error (which is <= 1) stays under that resolution.
TIE = 1e-4
NO_SHARE = 32  # "bits" of a layer kept in float32 (no weight sharing in the chain)


@dataclass(frozen=True)
class Option:
    sparsity: float
    bits: int
    drop: float       # predicted accuracy drop (fraction) of this layer's setting alone
    size_bytes: int   # encoded payload of the layer's weight
    distortion: float = 0.0  # ||w - w'||^2 / ||w||^2 of the setting: breaks ties of ``drop``

    @property
    def cost(self) -> float:
        """The drop the chooser minimises: ``drop``, with distortion deciding between settings
        whose measured drops tie (``TIE``)."""
        return self.drop + TIE * self.distortion


@dataclass
class Recipe:
    sparsity: dict[str, float]
    bits: dict[str, int]
    predicted_size_bytes: int
    predicted_ratio: float
    predicted_drop: float
    probes: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "bits": self.bits,
                "predicted_size_bytes": self.predicted_size_bytes,
                "predicted_ratio": self.predicted_ratio, "predicted_drop": self.predicted_drop,
                "probes": self.probes}


def kmeans_fast(v: np.ndarray, k: int, iters: int = 20) -> np.ndarray:
    """1-D Lloyd k-means with linear init (as ``share``), in numpy; the value nearest each ``v``."""
    if v.size == 0:
        return v
    c = np.linspace(v.min(), v.max(), min(k, max(1, np.unique(v).size)))
    for _ in range(iters):
        lab = np.searchsorted((c[1:] + c[:-1]) / 2, v)
        n = np.bincount(lab, minlength=c.size)
        c = np.sort(np.where(n > 0, np.bincount(lab, v, c.size) / np.maximum(n, 1), c))
    return c[np.searchsorted((c[1:] + c[:-1]) / 2, v)].astype(np.float32)


def quantized(w: torch.Tensor, bits: int) -> torch.Tensor:
    """``w`` with its non-zero values clustered to ``2**bits`` values (zeros stay zero)."""
    if bits >= NO_SHARE:
        return w.clone()
    x = w.detach().numpy().ravel().copy()
    nz = x != 0
    x[nz] = kmeans_fast(x[nz].astype(np.float64), 1 << bits)
    return torch.from_numpy(x).view_as(w)


@torch.no_grad()
def share_sensitivity(net: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                      bits: tuple[int, ...]) -> dict[str, list[float]]:
    """Accuracy when one layer alone is clustered to each bit width (the others untouched)."""
    curves: dict[str, list[float]] = {}
    for name, m in weight_layers(net):
        w0 = m.weight.detach().clone()
        curves[name] = []
        for b in bits:
            m.weight.copy_(quantized(w0, b))
            curves[name].append(accuracy(net, batches))
        m.weight.copy_(w0)
    return curves


def _monotone_drop(curve: list[float]) -> np.ndarray:
    return np.maximum.accumulate(curve[0] - np.asarray(curve))


def layer_options(w: torch.Tensor, prune_curve: list[float], share_curve: list[float] | None,
                  base: float, *, sparsities: tuple[float, ...], bits: tuple[int, ...],
                  huffman: bool, gap_bits: int) -> list[Option]:
    """Every (sparsity, bits) of one layer with its predicted drop and its real encoded size."""
    measured = SPARSITIES[:len(prune_curve)]
    pdrop = np.interp(sparsities, measured, _monotone_drop(prune_curve))
    sdrop = (np.zeros(len(bits)) if share_curve is None
             else np.maximum.accumulate(np.maximum(base - np.asarray(share_curve), 0)[::-1])[::-1])
    opts = []
    for s, dp in zip(sparsities, pdrop):
        pruned = w * magnitude_mask(w, s)
        for b, dq in zip(bits, sdrop):
            q = quantized(pruned, b)
            _, parts = _encode_tensor(q, huffman=huffman, gap_bits=gap_bits,
                                      fixed=None, dense_only=False)
            opts.append(Option(s, b, float(dp + dq), sum(map(len, parts)), float(
                ((q - w) ** 2).sum() / (w ** 2).sum().clamp_min(1e-30))))
    return opts


def fixed_bytes(net: nn.Module, *, share: bool, huffman: bool, gap_bits: int) -> int:
    """Bytes of the file outside the weights: header, biases, BatchNorm (float16 after share)."""
    weights = {f"{n}.weight" for n, _ in weight_layers(net)}
    sd = {}
    for k, t in net.state_dict().items():
        if k in weights:
            sd[k] = torch.zeros_like(t)
        elif share and t.is_floating_point() and torch.isfinite(t.half()).all():
            sd[k] = t.half().float()
        else:
            sd[k] = t
    return len(encode_state(sd, huffman=huffman, gap_bits=gap_bits).data)


def choose(options: dict[str, list[Option]], budget: int, fixed: int) -> dict[str, Option]:
    """Least summed drop with ``fixed + sum(size) <= budget``: each layer minimises
    ``cost + lam * size`` (``Option.cost``: the drop, ties broken by distortion) at the smallest
    price ``lam`` that fits (bisection)."""
    def at(lam: float) -> dict[str, Option]:
        return {n: min(o, key=lambda x: (x.cost + lam * x.size_bytes, x.size_bytes))
                for n, o in options.items()}

    def size(c: dict[str, Option]) -> int:
        return fixed + sum(o.size_bytes for o in c.values())

    smallest = {n: min(o, key=lambda x: (x.size_bytes, x.cost)) for n, o in options.items()}
    if size(smallest) > budget:
        raise ValueError("budget below the smallest option")
    if size(at(0.0)) <= budget:
        return at(0.0)
    lo, hi = 0.0, 1.0
    while size(at(hi)) > budget:
        hi *= 4
        if hi > 1e12:
            return smallest
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if size(at(mid)) <= budget else (mid, hi)
    return fill(at(hi), options, budget - fixed)


def fill(chosen: dict[str, Option], options: dict[str, list[Option]],
         budget: int) -> dict[str, Option]:
    """Spend the bytes a Lagrangian solution leaves (it sits on the curves' measured points):
    repeatedly take the one-layer change that lowers the drop most and still fits."""
    c = dict(chosen)
    used = sum(o.size_bytes for o in c.values())
    while True:
        best: tuple[float, str, Option] | None = None
        for n, opts in options.items():
            for o in opts:
                gain = c[n].cost - o.cost
                if gain > 1e-12 and used - c[n].size_bytes + o.size_bytes <= budget and (
                        best is None or gain > best[0]):
                    best = (gain, n, o)
        if best is None:
            return c
        _, n, o = best
        used += o.size_bytes - c[n].size_bytes
        c[n] = o


@dataclass
class Search:
    """The curves and options of one net, ready to answer budgets."""
    options: dict[str, list[Option]]
    fixed: int
    size_before: int
    curves: dict[str, Any]

    def max_ratio(self) -> float:
        small = self.fixed + sum(min(o.size_bytes for o in v) for v in self.options.values())
        return self.size_before / small

    def recipe(self, ratio: float, margin: float = MARGIN) -> Recipe:
        """Settings for ``ratio`` (aimed ``margin`` higher: the retrained masks and clusters
        encode a little differently from the estimate)."""
        budget = int(self.size_before / min(ratio * margin, self.max_ratio()))
        c = choose(self.options, budget, self.fixed)
        size = self.fixed + sum(o.size_bytes for o in c.values())
        return Recipe(sparsity={n: o.sparsity for n, o in c.items()},
                      bits={n: o.bits for n, o in c.items()}, predicted_size_bytes=size,
                      predicted_ratio=self.size_before / size,
                      predicted_drop=sum(o.drop for o in c.values()))


def build_search(state: State, methods: list[str]) -> Search:
    """Measure the curves of ``state.net`` and price every layer option for ``methods``."""
    cfg, net = state.cfg, state.net
    share, prune = "share" in methods, "prune" in methods
    huff = "huffman" in methods
    batches = state.valid()
    base = accuracy(net, batches)
    sparsities = GRID if prune else (0.0,)
    bits_all = BITS if share else (NO_SHARE,)
    pcurves, scurves = cached_curves(state, prune=prune, share=share, bits=bits_all, base=base,
                                     batches=batches)
    options = {}
    for name, m in weight_layers(net):
        kind_bits = bits_all
        if share:  # the bits a layer may get: never more than --bits-conv / --bits-fc
            cap = cfg.bits_conv if layer_kind(m) == "conv" else cfg.bits_fc
            kind_bits = tuple(b for b in BITS if b <= cap) or (min(BITS),)
        sc = None if scurves is None else [scurves[name][BITS.index(b)] for b in kind_bits]
        options[name] = layer_options(m.weight.detach().clone(), pcurves[name], sc, base,
                                      sparsities=sparsities, bits=kind_bits, huffman=huff,
                                      gap_bits=cfg.gap_bits)
    size_before = len(encode_state(net.state_dict(), dense_only=True).data)
    curves: dict[str, Any] = {"valid_accuracy": base}
    if prune:
        curves["prune"] = {"sparsities": list(SPARSITIES), "accuracy": pcurves}
    if scurves is not None:
        curves["share"] = {"bits": list(BITS), "accuracy": scurves}
    return Search(options, fixed_bytes(net, share=share, huffman=huff, gap_bits=cfg.gap_bits),
                  size_before, curves)


CURVES_FILE = "recipe_curves.json"


def cached_curves(state: State, *, prune: bool, share: bool, bits: tuple[int, ...], base: float,
                  batches: list[tuple[torch.Tensor, torch.Tensor]]
                  ) -> tuple[dict[str, list[float]], dict[str, list[float]] | None]:
    """The pruning and sharing sensitivity curves of ``state.net``, measured, or read from
    ``OUT/recipe_curves.json`` when that holds them for the same weights and scoring images (a
    re-run of the same compression skips the most expensive pass)."""
    import hashlib
    import json

    h = hashlib.sha256()
    for k, v in state.net.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    for x, y in batches:
        h.update(x.contiguous().numpy().tobytes())
    key = {"weights_and_images": h.hexdigest(), "prune": prune, "share": share, "bits": list(bits),
           "sparsities": list(SPARSITIES)}
    path = state.out / CURVES_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("key") == key:
                log.info("sensitivity curves: reusing %s", path)
                return old["prune"], old["share"]
        except (OSError, ValueError, KeyError):
            pass
    pcurves = sensitivity(state.net, batches) if prune else {n: [base] for n, _ in weight_layers(state.net)}
    scurves = share_sensitivity(state.net, batches, bits) if share else None
    from directnas.utils.fileio import write_json

    state.out.mkdir(parents=True, exist_ok=True)
    write_json(path, {"key": key, "prune": pcurves, "share": scurves})
    return pcurves, scurves


def probe(state: State, recipe: Recipe | None,
          batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Accuracy on ``batches`` of a copy of the net pruned to ``recipe``, retrained
    ``probe_steps`` steps with the masks held (over as many epochs as that takes), then clustered
    (without centroid retraining).  ``None``: the control, the same retraining of the net as it
    is -- a short retraining at the fine-tuning LR moves a converged net by itself, and that
    must not be charged to the compression."""
    net = copy.deepcopy(state.net)
    if recipe is not None:
        apply_masks(net, recipe.sparsity)
    ft = state.cfg.finetune
    per_epoch = max(1, len(state.data.train) // ft.batch_size)
    epochs = max(1, math.ceil(state.cfg.probe_steps / per_epoch))
    ft = replace(ft, epochs=epochs, max_steps=math.ceil(state.cfg.probe_steps / epochs))
    finetune(net, state.data, ft, progress=state.progress, desc="probe" if recipe else "probe control")
    if recipe is not None:
        remove_masks(net)
        with torch.no_grad():
            for name, m in weight_layers(net):
                m.weight.copy_(quantized(m.weight.detach(), recipe.bits[name]))
    return accuracy(net, batches)


def ladder(lo: float, hi: float, step: float = 1.15) -> list[float]:
    n = max(1, int(math.floor(math.log(hi / lo) / math.log(step))))
    return [lo * step ** i for i in range(n + 1)]


def search_recipe(state: State, methods: list[str], *, target_ratio: float | None,
                  max_loss: float | None) -> Recipe:
    """The recipe for ``target_ratio`` (x) or ``max_loss`` (a fraction, 0.01 = 1 point)."""
    if "prune" not in methods and "share" not in methods:
        raise UserError("--target-ratio / --max-loss choose sparsity and bits: put prune and/or "
                        "share in --method (e.g. prune,share,huffman)")
    s = build_search(state, methods)
    top = s.max_ratio()
    state.report["recipe_curves"] = s.curves
    if target_ratio is not None:
        if target_ratio > top:
            raise UserError(f"--target-ratio {target_ratio:g} is above the {top:.1f}x the search "
                            f"can reach with --method {','.join(methods)}: ask for less")
        r = s.recipe(target_ratio)
        log.info("recipe for %.1fx: predicted %.1fx", target_ratio, r.predicted_ratio)
        return r
    assert max_loss is not None
    batches = state.valid()
    base = s.curves["valid_accuracy"]
    rungs = ladder(2.0, top / MARGIN)
    lo, hi, best = 0, len(rungs) - 1, None
    probes: list[dict[str, Any]] = []
    seen: dict[tuple, float] = {}  # rungs below the free ratio share one recipe: probe it once
    control = probe(state, None, batches)  # the retraining's own effect, paired with every probe
    state.report["probe_control"] = {"accuracy_before": base, "accuracy_after_retraining": control,
                                     "steps": state.cfg.probe_steps}
    log.info("probe control (%d retraining steps, nothing compressed): %.4f -> %.4f",
             state.cfg.probe_steps, base, control)

    def probed(ratio: float) -> tuple[Recipe, float]:
        r = s.recipe(ratio)
        key = (tuple(sorted(r.sparsity.items())), tuple(sorted(r.bits.items())))
        if key not in seen:
            acc = probe(state, r, batches)
            seen[key] = control - acc
            probes.append({"ratio": ratio, "predicted_ratio": r.predicted_ratio,
                           "probe_accuracy": acc, "probe_loss": seen[key]})
            log.info("probe %.1fx: accuracy %.4f, loss %.4f against the control", r.predicted_ratio,
                     acc, seen[key])
        return r, seen[key]

    best_ratio, failed_ratio = None, None
    while lo <= hi:  # the largest rung whose probe stays within max_loss
        mid = (lo + hi) // 2
        r, loss = probed(rungs[mid])
        if loss <= max_loss:
            best, best_ratio, lo = r, rungs[mid], mid + 1
        else:
            failed_ratio, hi = rungs[mid], mid - 1
    # the ladder's steps are 15 %: bisect (geometrically) between the last rung kept and the
    # first one refused, so the ratio found is within ~4 % of where the loss crosses max_loss
    if best_ratio is not None and failed_ratio is not None and failed_ratio > best_ratio:
        for _ in range(REFINE):
            mid_ratio = math.sqrt(best_ratio * failed_ratio)
            r, loss = probed(mid_ratio)
            if loss <= max_loss:
                best, best_ratio = r, mid_ratio
            else:
                failed_ratio = mid_ratio
    if best is None:
        best = s.recipe(rungs[0])
        log.warning("no ratio probed kept the loss within %.4f: using %.1fx", max_loss,
                    best.predicted_ratio)
    best.probes = probes
    return best

"""The pictures of a report (matplotlib, Agg): the architecture as the ProxylessNAS paper draws
it, the accuracy-vs-measured-latency plane, op probabilities during search, and the curves."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from directnas.errors import UserError
from directnas.utils.fileio import write_bytes
from directnas.space.arch import Arch
from directnas.space.ops import parse_op


KERNEL_COLOURS = {1: "#9e9e9e", 3: "#4c8bd6", 5: "#f0a030", 7: "#d64c4c", 9: "#8e5bc4"}
FIXED_COLOUR, SKIP_COLOUR = "#cfd8dc", "#eeeeee"
FAMILY_LABELS = {"searched": "DirectNAS (searched)", "mobilenetv2": "MobileNetV2",
                 "mobilenetv3": "MobileNetV3-style (same ops)",
                 "random": "random nets of the searched net's window", "lenet": "LeNet",
                 "retrained": "searched net, retrained at the references' epochs"}
# family -> (colour, marker, marker size, points joined by a line); other families cycle OTHERS
FAMILY_STYLES = {"searched": ("#d62728", "*", 14, True), "random": ("#7f7f7f", "o", 6, False),
                 "mobilenetv2": ("#1f77b4", "s", 6, True), "mobilenetv3": ("#2ca02c", "^", 7, True),
                 "retrained": ("#ff7f0e", "*", 10, False)}
OTHERS = ["#9467bd", "#8c564b", "#17becf", "#bcbd22", "#e377c2"]


def _kernel_colour(kernel: int) -> str:
    return KERNEL_COLOURS.get(kernel, "#607d8b")


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    write_bytes(path, buf.getvalue())
    return path


# ---- the architecture --------------------------------------------------------------------------
def draw_arch(arch: Arch, path: str | Path, *, title: str | None = None) -> Path:
    """One box per layer: colour = kernel size, box width = expansion, height = output channels;
    skipped (``zero``) layers are dashed grey boxes.  Stem, first block and head are drawn too."""
    space = arch.space
    c_max = max([l.c_out for l in space.layers] + [space.stem_channels, 1])
    boxes: list[tuple[str, int, int, int, bool]] = [("Conv\n3x3" if space.stem_kernel == 3 else
                                                     f"Conv\n{space.stem_kernel}x{space.stem_kernel}",
                                                     0, 0, space.stem_channels, False)]
    if space.first_channels:
        boxes.append((f"MB{space.first_expand} {space.first_kernel}x{space.first_kernel}",
                      space.first_kernel, space.first_expand, space.first_channels, False))
    for layer, op in zip(space.layers, arch.ops):
        spec = parse_op(op)
        if spec is None:
            boxes.append(("skip", 0, 0, layer.c_out, True))
        else:
            g = f" g{spec.groups}" if spec.groups != 1 else ""
            boxes.append((f"MB{spec.expand} {spec.kernel}x{spec.kernel}{g}", spec.kernel, spec.expand,
                          layer.c_out, False))
    boxes.append(("Pool\nFC", 0, 0, space.head_channels or space.last_channels, False))
    e_max = max([b[2] for b in boxes] + [1])

    fig = Figure(figsize=(max(6.0, 0.42 * len(boxes) + 1.5), 3.4))
    ax = fig.add_subplot()
    x = 0.0
    centres = []
    for i, (label, kernel, expand, ch, skipped) in enumerate(boxes):
        fixed = i == 0 or i == len(boxes) - 1
        w = 0.55 if fixed else 0.25 + 0.55 * (expand / e_max if expand else 0.5)
        h = 0.45 + 0.55 * ch / max(c_max, ch)
        colour = FIXED_COLOUR if fixed else SKIP_COLOUR if skipped else _kernel_colour(kernel)
        ax.add_patch(Rectangle((x, -h / 2), w, h, facecolor=colour, edgecolor="#888" if skipped else "#333",
                               linestyle="--" if skipped else "-", linewidth=0.8))
        ax.text(x + w / 2, 0, label, rotation=90, ha="center", va="center", fontsize=7,
                color="#888" if skipped else "black")
        centres.append(x + w / 2)
        x += w + 0.12
    # stage annotations under the boxes: width and resolution
    offset = 1 + (1 if space.first_channels else 0)
    for si, st in enumerate(space.stages):
        idx = [offset + l.index for l in space.layers if l.stage == si]
        if not idx:
            continue
        l0 = next(l for l in space.layers if l.stage == si)
        x0, x1 = centres[idx[0]] - 0.2, centres[idx[-1]] + 0.2
        ax.plot([x0, x1], [-0.62, -0.62], color="#555", linewidth=0.8)
        ax.text((x0 + x1) / 2, -0.7, f"{l0.c_out}ch {l0.hw_out}x{l0.hw_out}", ha="center", va="top",
                fontsize=7)
    handles = [Rectangle((0, 0), 1, 1, facecolor=_kernel_colour(k), edgecolor="#333")
               for k in sorted({b[1] for b in boxes if b[1]})]
    labels = [f"{k}x{k} kernel" for k in sorted({b[1] for b in boxes if b[1]})]
    if any(b[4] for b in boxes):
        handles.append(Rectangle((0, 0), 1, 1, facecolor=SKIP_COLOUR, edgecolor="#888", linestyle="--"))
        labels.append("skipped layer")
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels),
              fontsize=7, frameon=False)
    ax.set_xlim(-0.2, x)
    ax.set_ylim(-0.9, 0.6)
    ax.axis("off")
    ax.set_title(title or f"{space.name}: {arch.depth} of {len(arch.ops)} layers kept", fontsize=9)
    return _save(fig, Path(path))


# ---- the accuracy-latency plane ----------------------------------------------------------------
def plot_pareto(points: list[dict[str, Any]], path: str | Path, *, title: str | None = None) -> Path:
    """Test accuracy vs measured latency; one marker per family (``family`` key; a family's
    points joined by a line, the random nets not), labels beside; the searched nets on top.
    With random nets and other families, a second panel zooms on the searched nets and the random
    nets of their window (a dashed box on the first panel marks it)."""
    window = [p for p in points if p["family"] in ("searched", "random", "retrained")]
    zoom = any(p["family"] == "random" for p in points) and len(window) < len(points)
    fig = Figure(figsize=(11.6 if zoom else 6.4, 4.4))
    ax = fig.add_subplot(1, 2 if zoom else 1, 1)
    _draw_families(ax, points)
    backend = {p.get("backend") for p in points} - {None}
    xlabel = f"measured latency (ms, batch 1{', ' + ', '.join(sorted(backend)) if backend else ''})"
    ax.set_title(title or "accuracy vs measured latency", fontsize=10)
    if zoom:
        x = [p["latency_ms"] for p in window]
        y = [100 * p["test_accuracy"] for p in window]
        dx, dy = max(0.15 * (max(x) - min(x)), 0.02 * max(x)), max(0.15 * (max(y) - min(y)), 0.1)
        box = (min(x) - dx, max(x) + dx, min(y) - dy, max(y) + dy)
        ax.add_patch(Rectangle((box[0], box[2]), box[1] - box[0], box[3] - box[2], fill=False,
                               linestyle="--", edgecolor="#555", linewidth=0.8))
        right = fig.add_subplot(1, 2, 2)
        _draw_families(right, window, spread=True)
        right.set_xlim(box[0], box[1])
        right.set_ylim(box[2], box[3])
        right.set_xlabel(xlabel)
        right.set_title("zoom: the searched net and random nets of its window", fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    return _save(fig, Path(path))


def _draw_families(ax: Any, points: list[dict[str, Any]], *, spread: bool = False) -> None:
    """Each family's points on ``ax`` with its style and labels (``spread``: labels alternate
    above and below, for crowded points), a grid and a legend."""
    families = sorted({p["family"] for p in points}, key=lambda f: (f != "searched", f))
    others = iter(OTHERS * (1 + len(families) // len(OTHERS)))
    for fam in families:
        pts = sorted((p for p in points if p["family"] == fam), key=lambda p: p["latency_ms"])
        colour, marker, size, joined = FAMILY_STYLES.get(fam) or (next(others), "o", 6, True)
        ax.plot([p["latency_ms"] for p in pts], [100 * p["test_accuracy"] for p in pts],
                marker=marker, markersize=size, color=colour, linewidth=1,
                linestyle="-" if joined else "none", zorder=3 if fam == "searched" else 2,
                label=FAMILY_LABELS.get(fam, fam))
        for k, p in enumerate(pts):
            up = fam != "searched" and not (spread and k % 2)
            ax.annotate(p["label"], (p["latency_ms"], 100 * p["test_accuracy"]), fontsize=7,
                        xytext=(5, 4 if up else -11), textcoords="offset points")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(latency, accuracy) points not beaten by a faster, at-least-as-accurate point, by latency."""
    front: list[tuple[float, float]] = []
    for lat, acc in sorted(points):
        if not front or acc > front[-1][1]:
            front.append((lat, acc))
    return front


def latency_ratio_at_equal_accuracy(accuracy: float, latency_ms: float,
                                    baseline: list[tuple[float, float]]) -> dict[str, Any] | None:
    """How much slower the baseline family is at ``accuracy``: its latency there (interpolated
    linearly along its Pareto front) / ``latency_ms``.  None if no baseline reaches ``accuracy``."""
    front = pareto_front(baseline)
    if not front or accuracy > front[-1][1]:
        return None
    i = next(j for j, (_, a) in enumerate(front) if a >= accuracy)
    if i == 0:
        base, method = front[0][0], "fastest baseline is at least as accurate"
    else:
        (l0, a0), (l1, a1) = front[i - 1], front[i]
        base, method = l0 + (accuracy - a0) / (a1 - a0) * (l1 - l0), "interpolated"
    return {"baseline_latency_ms": base, "ratio": base / latency_ms, "method": method}


# ---- search dynamics and curves ----------------------------------------------------------------
def _op_style(op: str) -> dict[str, Any]:
    spec = parse_op(op)
    if spec is None:
        return {"color": "black", "linestyle": ":"}
    return {"color": _kernel_colour(spec.kernel), "linestyle": "-" if spec.expand >= 6 else "--"}


def plot_probs(search: dict[str, Any], path: str | Path, *, title: str | None = None) -> Path:
    """One small panel per layer: each candidate's probability over alpha steps."""
    history, names = search.get("history") or [], search.get("layer_names") or []
    if not history or not names:
        raise UserError("search.json has no probability history: re-run the search with this version")
    steps = [h["alpha_steps"] for h in history]
    n = len(names)
    cols = min(6, n)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(2.0 * cols + 0.5, 1.6 * rows + 0.9))
    chosen = search.get("arch") or []
    for i, ops in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, op in enumerate(ops):
            ax.plot(steps, [h["probs"][i][j] for h in history], linewidth=1.2, label=op, **_op_style(op))
        ax.set_ylim(0, 1)
        ax.set_title(f"layer {i}: {chosen[i] if i < len(chosen) else ''}", fontsize=7)
        ax.tick_params(labelsize=6)
        if i % cols == 0:
            ax.set_ylabel("p", fontsize=7)
        if i >= n - cols:
            ax.set_xlabel("alpha steps", fontsize=7)
    all_ops = list(dict.fromkeys(op for ops in names for op in ops))
    handles = [fig.axes[0].plot([], [], **_op_style(op))[0] for op in all_ops]
    fig.legend(handles, all_ops, loc="lower center", ncol=min(len(all_ops), 7), fontsize=7,
               bbox_to_anchor=(0.5, -0.02), frameon=False)
    fig.suptitle(title or "op probabilities during search (warm-up excluded: alpha is frozen)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return _save(fig, Path(path))


def plot_curves(search_rows: list[dict[str, Any]], train_rows: list[dict[str, Any]],
                path: str | Path, *, target_ms: float | None = None,
                test_accuracy: float | None = None, kept_ms: float | None = None,
                latency_free: bool = False) -> Path:
    """Search losses, search latency (expected and of the argmax net; ``kept_ms``, the derived
    net's, at the last epoch) and training loss per epoch.  ``latency_free``: alpha saw no
    latency term (loss none), so E[LAT] is not pushed toward T: the panel's title says so."""
    lat_rows = [r for r in search_rows if "expected_latency_ms" in r]
    panels = [p for p in (("search loss", search_rows), ("search latency", lat_rows),
                          ("train", train_rows)) if p[1]]
    if not panels:
        raise UserError("no per-epoch rows to plot: the run has no curves.json / search.json")
    fig = Figure(figsize=(4.2 * len(panels), 3.2))
    for k, (name, rows) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ep = [r["epoch"] for r in rows]
        if name == "search latency":
            ax.plot(ep, [r["expected_latency_ms"] for r in rows], marker="^", color="#d62728",
                    label="expected E[LAT]")
            ax.plot(ep, [r.get("derived_latency_ms", float("nan")) for r in rows], marker="v",
                    color="#555", label="argmax net (table)")
            if target_ms:
                ax.axhline(target_ms, color="#d62728", linestyle=":", label=f"target {target_ms:g} ms")
            if kept_ms:
                ax.plot([ep[-1]], [kept_ms], marker="*", markersize=11, linestyle="none",
                        color="#2ca02c", label=f"kept net {kept_ms:.3g} ms (derive)")
            ax.set_ylabel("latency (ms)")
        else:
            ax.plot(ep, [r["train_loss"] for r in rows], marker="o", label="train loss")
            alpha = [r.get("alpha_loss") if not r.get("warmup") else None for r in rows]
            if name == "search loss" and any(alpha):
                ax.plot(ep, [float("nan") if a is None else a for a in alpha], marker="s",
                        label="alpha (validation) loss")
            ax.set_ylabel("loss")
        if name == "search loss" and any(r.get("warmup") for r in rows):
            last_warm = max(r["epoch"] for r in rows if r.get("warmup"))
            ax.axvspan(min(ep) - 0.5, last_warm + 0.5, color="#eee", zorder=0, label="warm-up")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        acc = f" (test accuracy {100 * test_accuracy:.2f} %)" if name == "train" and test_accuracy else ""
        note = "\n(alpha on cross-entropy alone; the derive meets T)" \
            if name == "search latency" and latency_free else ""
        ax.set_title(f"{name}{acc}{note}", fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path))

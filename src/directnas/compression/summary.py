"""What a compression says when it ends: the retraining and the searched recipe, a table of the
layers, accuracy / size / latency before and after, and the goals missed."""

from __future__ import annotations

from typing import Any


def recipe_lines(m: dict[str, Any]) -> list[str]:
    """The retraining schedule and, after a recipe search, the per-layer settings it chose."""
    r = m["recipe"]
    ft = r["finetune"]
    lines = [f"retraining: {r['prune_steps']} prune rounds x {ft['epochs']} epochs, LR {ft['lr']:g}, "
             f"weight decay {ft['weight_decay']:g}, label smoothing {ft['label_smoothing']:g}, "
             f"augment {'on' if ft['augment'] else 'off'}"]
    if r["layer_sparsity"] is None and r["layer_bits"] is None:
        return lines
    searched = m["methods_report"]["recipe"]
    goal = (f"target {r['target_ratio']:g}x" if r["target_ratio"] is not None
            else f"max loss {100 * r['max_loss']:g} points")
    return lines + [f"recipe ({goal}): predicted {searched['predicted_ratio']:.1f}x; per layer "
                    + ", ".join(f"{n}: sparsity {(r['layer_sparsity'] or {}).get(n, 0):.3f}"
                                + (f" {r['layer_bits'][n]} bits" if r["layer_bits"] else "")
                                for n in searched["sparsity"])]


def layer_lines(rows: list[dict[str, Any]]) -> list[str]:
    """layers.json as a table: size, density, distinct values and encoding per layer."""
    lines = [f"{'layer':<14}{'type':<6}{'params':>9}{'density':>9}{'values':>8}{'bytes':>9}"
             f"{'ratio':>8}  encoding"]
    for r in rows:
        lines.append(f"{r['layer']:<14}{r['type']:<6}{r['params']:>9}{r['density']:>9.3f}"
                     f"{r['unique_values']:>8}{r['bytes_encoded']:>9}{r['compression_ratio']:>7.1f}x"
                     f"  {r['encoding']}")
    return lines


def summary_lines(m: dict[str, Any], layers: list[dict[str, Any]]) -> list[str]:
    """Everything a compression reports, one string per printed line."""
    lines = recipe_lines(m) + layer_lines(layers)
    lines.append(f"accuracy {100 * m['accuracy_before']:.2f} % -> {100 * m['accuracy_after']:.2f} %, "
                 f"size {m['size_bytes_before']} -> {m['size_bytes_after']} bytes "
                 f"({m['compression_ratio']:.1f}x), latency {m['latency_ms_before']:.3f} -> "
                 f"{m['latency_ms_after']:.3f} ms ({m['latency_backend']})")
    if "int8" in m["methods_report"]:
        from directnas.compression.int8 import summary_lines as int8_lines

        lines += int8_lines(m["methods_report"]["int8"])
    for key, what in (("target_ratio_met", "target ratio"), ("max_loss_met", "loss bound")):
        if m.get(key) is False:
            lines.append(f"warning: the {what} was not met (see metrics.json)")
    return lines


def artifact_lines(export: dict[str, dict[str, Any]]) -> list[str]:
    """The artifacts of the compressed net: runtime, latency, accuracy, agreement."""
    return [f"artifact: {r['path']}  ({r['runtime_version']}: {r['latency_ms']:.3f} ms, noise "
            f"floor {100 * r['noise_floor']:.1f} %; accuracy {100 * r['accuracy']:.2f} %, top-1 "
            f"agreement with the compressed PyTorch net {100 * r['top1_agreement']:.2f} %)"
            for r in export.values()]

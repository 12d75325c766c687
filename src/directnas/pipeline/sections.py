"""What a run adds to its report.md (the shipped artifact, the compressed net) and the lines
``directnas run`` prints for each target at the end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from directnas.latency.near_target import NEAR_WINDOW
from directnas.utils.fileio import write_text

if TYPE_CHECKING:
    from directnas.pipeline.run import TargetResult


def append_export_section(report: Path, metrics: Mapping[str, Any], exported: Mapping[str, Any],
                          target_ms: float | None, *, table_reference_ms: float | None = None,
                          check: Mapping[str, Any] | None = None) -> None:
    """The shipped artifact beside the target and the prediction, in report.md; with the
    reference net's latency when the table was measured, also in reference units (the machine's
    speed drifts between sessions, and the reference net is timed in both); with ``check``
    (``target_check_stage``), against the target at the machine's speed at export."""
    t = target_ms
    rows = ["", "## Shipped artifact", "",
            "| artifact | runtime | target | predicted | measured (artifact) | noise floor | "
            "top-1 agreement | accuracy |", "|---|---|---|---|---|---|---|---|",
            f"| {exported['path']} | {exported['runtime_version']} | "
            f"{'-' if t is None else f'{t:.3f} ms'} | "
            f"{metrics.get('predicted_latency_ms', float('nan')):.3f} ms | "
            f"{exported['latency_ms']:.3f} ms (batch {exported['latency_batch_size']}, "
            f"{exported['latency_threads']} thread(s)) | {100 * exported['noise_floor']:.1f} % | "
            f"{100 * exported['top1_agreement']:.2f} % | {100 * exported['accuracy']:.2f} % |", ""]
    if t:
        r = exported["latency_ms"] / t
        lo, hi = NEAR_WINDOW
        line = (f"The artifact runs at **{r:.2f} T** of its target "
                f"({'inside' if lo <= r <= hi else 'outside'} [{lo:.2f} T, {hi:.2f} T])")
        ref = exported.get("reference_ms")
        if ref and table_reference_ms:
            u = r * table_reference_ms / ref
            line += (f"; in units of the reference net (timed at {table_reference_ms:.3f} ms with the "
                     f"table, {ref:.3f} ms with the artifact) at **{u:.2f} T**")
        rows += [line + ".", ""]
    if check:
        from directnas.deploy.target_check import describe

        rows += ["### Target held?", "", describe(check), "",
                 "A target in ms holds at the speed the machine ran when it was measured; the nets "
                 "it was measured on, timed again beside the artifact, give that speed now "
                 "(`export/target_check.json`).", ""]
    text = report.read_text() if report.exists() else ""
    write_text(report, text.rstrip("\n") + "\n" + "\n".join(rows))


def append_compress_section(report: Path, m: Mapping[str, Any]) -> None:
    """The compression stage (``run --compress-*``) in report.md: ratio, accuracy, artifact."""
    text = report.read_text() if report.exists() else ""
    head = "## Compressed"
    text = text.split("\n" + head + "\n")[0]  # re-running replaces the section
    r = m.get("recipe") or {}
    goal = (f"--target-ratio {r['target_ratio']:g}" if r.get("target_ratio") is not None
            else f"--max-loss {100 * r['max_loss']:g}" if r.get("max_loss") is not None else "")
    rows = ["", head, "",
            f"`directnas compress --method {','.join(m['methods'])} {goal}` (compress/metrics.json)",
            "", "| ratio | bytes | accuracy before -> after | artifact | runtime | latency | noise floor |",
            "|---|---|---|---|---|---|---|"]
    arts = list((m.get("export") or {}).values()) or [None]
    for a in arts:
        rows.append(f"| {m['compression_ratio']:.1f}x | {m['size_bytes_before']} -> "
                    f"{m['size_bytes_after']} | {100 * m['accuracy_before']:.2f} -> "
                    f"{100 * m['accuracy_after']:.2f} % | "
                    + ("- | - | - | - |" if a is None else
                       f"{a['path']} | {a['runtime_version']} | {a['latency_ms']:.3f} ms | "
                       f"{100 * a['noise_floor']:.1f} % |"))
    write_text(report, text.rstrip("\n") + "\n" + "\n".join(rows) + "\n")


def target_lines(r: "TargetResult") -> list[str]:
    """One target's outcome: the architecture, accuracy and latency, the artifact, whether the
    target held, the searched net against its references, and the compressed net."""
    m, t = r.metrics, r.arch.meta.get("target_latency_ms")
    lines = [f"architecture: {(r.folder / 'search' / 'arch.json').resolve()}  [{r.arch.summary()}]",
             f"  test accuracy {100 * m['test_accuracy']:.2f} %, measured latency {m['latency_ms']:.3f} ms"
             f" (predicted {m.get('predicted_latency_ms', float('nan')):.3f} ms"
             f"{f', target {t:g} ms' if t else ''}; {m['latency_backend']}, batch 1)"]
    if r.exported:
        e = r.exported
        lines.append(f"artifact: {e['path']}  ({e['runtime_version']}: {e['latency_ms']:.3f} ms, "
                     f"noise floor {100 * e['noise_floor']:.1f} %; top-1 agreement with PyTorch "
                     f"{100 * e['top1_agreement']:.2f} %; how to run it: "
                     f"{Path(e['path']).parent / 'README.md'})")
    if r.check:
        c = r.check
        lo, hi = c["window"]
        lines.append(f"  target held: {c['ratio']:.2f} T at the machine's speed now "
                     f"({'inside' if c['held'] else 'outside'} [{lo:.2f} T, {hi:.2f} T]; the "
                     f"near-target nets run at {c['speed_now_over_then']:.2f}x their search-time "
                     f"latency), {c['ratio_ms']:.2f} T against the {c['target_ms']:.4f} ms searched for")
    if r.references:
        v = r.references["versus"]
        lines.append(f"references: {len(r.references['references'])} nets trained and timed beside "
                     f"the artifact ({(r.folder / 'references' / 'references.json').resolve()})")
        lines.append(f"  {v['line']}")
    if r.compressed:
        c = r.compressed
        lines.append(f"compressed: {(r.folder / 'compress' / c['compressed_file']).resolve()}  "
                     f"({c['compression_ratio']:.1f}x, {c['size_bytes_after']} bytes; accuracy "
                     f"{100 * c['accuracy_before']:.2f} -> {100 * c['accuracy_after']:.2f} %)")
        lines += [f"  artifact: {x['path']}  ({x['runtime_version']}: {x['latency_ms']:.3f} ms, "
                  f"noise floor {100 * x['noise_floor']:.1f} %)" for x in (c.get("export") or {}).values()]
    return lines

"""Pictures and summaries of finished runs: report.md + report.json + PNGs (matplotlib, Agg).

Pictures: the architecture as the ProxylessNAS paper draws it (``draw_arch``), the
accuracy-vs-measured-latency plane (``plot_pareto``), the op probabilities during search
(``plot_probs``) and the search/training curves (``plot_curves``).  ``write_report(folders, out)``
finds the runs under ``folders`` (``find_runs``) and writes everything to ``out``.

Run folders it understands: a pipeline run (``search/arch.json`` + ``train/metrics.json``, from
``directnas run``; with the reference nets it trained, ``references/``), a train folder
(``metrics.json``, from ``directnas train`` or ``baselines``), or a folder holding such folders
(several targets, a baselines folder).  A searched net with references is compared with the best
of them at equal or lower latency (``report.references``).

The pictures are in ``report_plots``, run discovery in ``report_runs`` (both re-exported
here); this module writes the report.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from directnas.errors import UserError
from directnas.utils.fileio import write_json, write_text
from directnas.report.plots import (FAMILY_LABELS, KERNEL_COLOURS, draw_arch,  # noqa: F401
                                    latency_ratio_at_equal_accuracy, pareto_front, plot_curves,
                                    plot_pareto, plot_probs)
from directnas.report.references import session_text, versus
from directnas.report.runs import SKIP_DIRS, Run, find_runs, load_run  # noqa: F401

log = logging.getLogger(__name__)


LABELS = (("searched@", "T="), ("mobilenetv2-", "MBv2-"), ("mobilenetv3-", "MBv3-"),
          ("random-", "r"))


def _label(name: str) -> str:
    for a, b in LABELS:
        name = name.replace(a, b)
    return name


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")


def write_report(folders: list[str | Path], out: str | Path, *, title: str = "directnas report",
                 runs: list[Run] | None = None) -> dict[str, Any]:
    """Find the runs in ``folders`` (or take ``runs`` already found); write ``out/report.md``,
    ``out/report.json`` and PNGs."""
    runs = find_runs(folders) if runs is None else runs
    if not runs:
        raise UserError(f"no finished runs in {', '.join(map(str, folders))}: give folders written "
                        "by directnas run, train or baselines")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots: dict[str, dict[str, str]] = {}
    for r in runs:
        p: dict[str, str] = {}
        slug = _slug(r.name)
        if r.arch is not None:
            p["architecture"] = draw_arch(r.arch, out / f"arch-{slug}.png", title=r.name).name
        if r.search and r.search.get("history"):
            p["probabilities"] = plot_probs(r.search, out / f"probs-{slug}.png").name
        search_rows = (r.search or {}).get("epochs") or []
        if search_rows or r.train_rows:
            search = r.search or {}
            p["curves"] = plot_curves(search_rows, r.train_rows, out / f"curves-{slug}.png",
                                      target_ms=r.target_ms,
                                      test_accuracy=r.metrics.get("test_accuracy"),
                                      kept_ms=search.get("predicted_latency_ms"),
                                      latency_free=(search.get("config") or {}).get("loss")
                                      == "none" and r.target_ms is not None).name
        if p:
            plots[r.name] = p
    measured = [r for r in runs if "test_accuracy" in r.metrics and "latency_ms" in r.metrics]
    points = [{"label": _label(r.name), "family": r.family, "latency_ms": r.metrics["latency_ms"],
               "test_accuracy": r.metrics["test_accuracy"],
               "backend": r.metrics.get("latency_backend")} for r in measured]
    pareto = plot_pareto(points, out / "pareto.png", title=_pareto_title(runs)).name \
        if points else None
    summary = {"runs": [_run_json(r, out) for r in runs], "plots": plots, "pareto_plot": pareto,
               "comparisons": _comparisons(measured), "references": _versus(runs)}
    write_json(out / "report.json", summary)
    write_text(out / "report.md", _markdown(title, runs, summary))
    log.info("report written to %s", out / "report.md")
    return summary


def _run_json(r: Run, out: Path) -> dict[str, Any]:
    keys = ("test_accuracy", "latency_ms", "latency_spread_ms", "predicted_latency_ms", "params",
            "macs", "latency_backend", "latency_threads", "latency_batch_size", "train_wall_s",
            "epochs", "latency_ms_at_training", "latency_side_by_side", "test_accuracy_flip_tta",
            "latency_noise_floor", "latency_reference_ms", "latency_reference")
    d: dict[str, Any] = {"name": r.name, "kind": r.kind, "family": r.family,
                         "folder": str(r.folder.resolve()),
                         **{k: r.metrics[k] for k in keys if k in r.metrics}}
    if r.arch is not None:
        d["arch"] = r.arch.ops
        d["target_latency_ms"] = r.target_ms
        d["searched_predicted_latency_ms"] = r.arch.meta.get("predicted_latency_ms")
    if r.search:
        d["search_wall_s"] = r.search.get("search_wall_s")
    if r.owner is not None:
        d["reference_of"] = str(r.owner.resolve())
    return d


def _pareto_title(runs: list[Run]) -> str | None:
    """Says so when the references were trained for other epochs than the searched net."""
    for s in (r for r in runs if r.references):
        ep, ref_ep = s.metrics.get("epochs"), s.references.get("epochs")
        if ep is not None and ref_ep is not None and ep != ref_ep:
            return (f"accuracy vs measured latency: searched net {ep} epochs; references and "
                    f"retrained-e{ref_ep} {ref_ep} epochs")
    return None


def _versus(runs: list[Run]) -> list[dict[str, Any]]:
    """Each searched net with references against the best of them at equal or lower latency."""
    out = []
    for s in (r for r in runs if r.references):
        rows = [{"name": r.name, **r.metrics} for r in runs if r.owner == s.folder]
        v = versus({"name": s.name, **s.metrics}, rows,
                   noise_floor=s.references["session"].get("noise_floor"))
        out.append({**v, "session": s.references["session"], "window_ms": s.references["window_ms"],
                    "epochs": s.references["epochs"]})
    return out


def _comparisons(measured: list[Run]) -> list[dict[str, Any]]:
    """Each searched net against each baseline family and each family of its own references:
    latency ratio at equal accuracy."""
    out = []
    for s in (r for r in measured if r.kind == "searched"):
        # baselines, and the references timed beside this searched net
        # (not the searched net retrained at the references' epochs: the same network)
        pool = [r for r in measured if (r.kind == "baseline" or r.owner == s.folder)
                and r.family != "retrained"]
        # references trained for other epochs are compared with the searched net trained so
        again = next((r for r in measured if r.owner == s.folder and r.family == "retrained"), None)
        for fam in sorted({r.family for r in pool}):
            base = [(r.metrics["latency_ms"], r.metrics["test_accuracy"])
                    for r in pool if r.family == fam]
            own = again is not None and any(r.owner == s.folder for r in pool if r.family == fam)
            acc = (again if own else s).metrics["test_accuracy"]  # type: ignore[union-attr]
            ratio = latency_ratio_at_equal_accuracy(acc, s.metrics["latency_ms"], base)
            dominated = [r.name for r in pool if r.family == fam
                         and r.metrics["latency_ms"] <= s.metrics["latency_ms"]
                         and r.metrics["test_accuracy"] >= acc]
            if ratio is None:  # the family never gets there: its most accurate member bounds it
                best = max((r for r in pool if r.family == fam),
                           key=lambda r: (r.metrics["test_accuracy"], -r.metrics["latency_ms"]))
                bound = best.metrics["latency_ms"] / s.metrics["latency_ms"]
                ratio = {"ratio": None, "ratio_lower_bound": bound,
                         "method": f"no baseline reaches this accuracy; the most accurate, {best.name}, "
                                   f"is {bound:.2f}x slower"}
            out.append({"searched": s.name, "baseline_family": fam, "dominated_by": dominated,
                        **({"searched_as": again.name} if own else {}), **ratio})
    return out


def _markdown(title: str, runs: list[Run], summary: dict[str, Any]) -> str:
    lines = [f"# {title}", "", "| run | kind | test accuracy | measured latency | predicted latency "
             "| target | params | MMACs |", "|---|---|---|---|---|---|---|---|"]
    for r, d in zip(runs, summary["runs"]):
        def f(key: str, fmt: str, scale: float = 1.0) -> str:
            v = d.get(key)
            return format(v * scale if scale != 1.0 else v, fmt) if isinstance(v, (int, float)) else "-"

        lines.append(f"| {r.name} | {r.kind} | {f('test_accuracy', '.2f', 100)} % | "
                     f"{f('latency_ms', '.3f')} ms | {f('predicted_latency_ms', '.3f')} ms | "
                     f"{f('target_latency_ms', 'g')} | {f('params', ',d')} | {f('macs', '.1f', 1e-6)} |")
    tta = [f"{r.name} {100 * d['test_accuracy_flip_tta']:.2f} %" for r, d in zip(runs, summary["runs"])
           if isinstance(d.get("test_accuracy_flip_tta"), float)]
    if tta:
        lines += ["", "Test accuracy with flip test-time augmentation (the mean softmax of the image "
                  "and its mirror image: two forward passes, not counted in the latencies above): "
                  + "; ".join(tta) + "."]
    backend = {d.get("latency_backend") for d in summary["runs"]} - {None}
    if backend:
        sbs = next((d["latency_side_by_side"] for d in summary["runs"] if d.get("latency_side_by_side")),
                   None)
        stat = sbs.get("stat", "median") if sbs else "median"
        where = f"as exported artifacts ({sbs['artifacts']})" if sbs and sbs.get("artifacts") \
            else "in one process"
        how = (f"all {sbs['nets']} nets timed side by side {where}, {sbs['rounds']} interleaved "
               f"rounds x ({sbs['warmup']} warm-up + {sbs['repeats']} repeats), the {stat} of each "
               "round, median over rounds" if sbs else
               "each net timed right after its training, median of repeats")
        ref = next((d for d in summary["runs"] if isinstance(d.get("latency_noise_floor"), float)), None)
        if ref is not None:
            how += (f"; {ref.get('latency_reference') or 'a reference net'} timed in every round "
                    f"({ref['latency_reference_ms']:.3f} ms), each round scaled by it, its round "
                    f"spread, the noise floor: {100 * ref['latency_noise_floor']:.1f} %")
        threads = {d.get("latency_threads") for d in summary["runs"]} - {None}
        lines += ["", f"Latency: batch 1, {'/'.join(map(str, sorted(threads)))} threads, measured end "
                  f"to end on {', '.join(sorted(backend))} ({how}); predicted = sum of latency-table "
                  "entries."]
    lines += _reference_lines(runs, summary)
    if summary["comparisons"]:
        lines += ["", "## Searched vs baselines at equal accuracy", "",
                  "| searched | baseline family | baseline latency at equal accuracy | ratio | note |",
                  "|---|---|---|---|---|"]
        for c in summary["comparisons"]:
            base = f"{c['baseline_latency_ms']:.3f} ms" if c.get("baseline_latency_ms") else "-"
            ratio = f"{c['ratio']:.2f}x" if c.get("ratio") else \
                (f"> {c['ratio_lower_bound']:.2f}x" if c.get("ratio_lower_bound") else "-")
            note = c["method"] + (f"; dominated by {', '.join(c['dominated_by'])}" if c["dominated_by"] else "")
            lines.append(f"| {c['searched']} | {c['baseline_family']} | {base} | {ratio} | {note} |")
    if summary["pareto_plot"]:
        lines += ["", "## Accuracy vs measured latency", "", f"![accuracy vs latency]({summary['pareto_plot']})"]
    for r in runs:
        p = summary["plots"].get(r.name)
        if not p:
            continue
        lines += ["", f"## {r.name}", ""]
        if r.arch is not None:
            lines += [f"Architecture: `{r.arch.summary()}` (`-` = skipped layer)", ""]
        lines += search_decision_lines(r.search)
        lines += [f"![{kind}]({name})" for kind, name in p.items()]
    return "\n".join(lines) + "\n"


def _reference_lines(runs: list[Run], summary: dict[str, Any]) -> list[str]:
    """The section comparing each searched net with its references, when it has any."""
    owners = [r for r in runs if r.references]
    if not owners:
        return []
    lines = ["", "## Searched vs references at equal or lower latency", ""]
    for r, v in zip(owners, summary["references"]):
        head = f"{r.name}: " if len(owners) > 1 else ""
        lines += [f"**{head}{v['line']}**", "", session_text(r.references or {}), ""]
    return lines[:-1]


def search_decision_lines(search: dict[str, Any] | None) -> list[str]:
    """Has the search decided?  Largest op probability per layer at the end, and the supernet's
    accuracy on the argmax path per epoch (search/diagnostics.py); empty for older searches."""
    if not search or "decision" not in search:
        return []
    d = search["decision"]
    lines = [f"Search decision: mean largest op probability {d['mean_max_prob']:.2f} "
             f"(uniform: {1 / max(len(c) for c in search.get('layer_names', [[0]])):.2f}), per layer "
             + " ".join(f"{p:.2f}" for p in d["max_prob"]) + "."]
    accs = [(e["epoch"], e["supernet_valid_accuracy"]) for e in search.get("epochs", [])
            if "supernet_valid_accuracy" in e]
    if accs:
        step = -(-len(accs) // 12)  # at most about a dozen epochs shown, the last always
        shown = accs[::step] + ([accs[-1]] if (len(accs) - 1) % step else [])
        lines.append("Supernet validation accuracy of the argmax path by epoch"
                     + (f" (every {step}th)" if step > 1 else "") + ": "
                     + ", ".join(f"{ep}: {100 * a:.1f} %" for ep, a in shown) + ".")
    if search.get("supernet_learned") is False:
        choice = search.get("search_choice") or {}
        acc = choice.get("supernet_accuracy", search["supernet_valid_accuracy"])
        then = ("so the net kept is the one with the most MACs in the latency window, which needs "
                "no supernet (search option unlearned_derive: keep to keep the search's choice)"
                if str(search.get("derive", "")).startswith("macs (") else
                "so the search's choice is close to a random draw of the window")
        lines.append(f"**The supernet had not learned**: the search's choice scores {100 * acc:.1f} % "
                     f"inside it, near chance ({100 * search['chance_accuracy']:.1f} %), {then}: "
                     "give it more steps (--warmup-epochs / --epochs) or more images.")
    rerank = search.get("rerank")
    if rerank:
        accs_r = [r["supernet_accuracy"] for r in rerank]
        lines.append(f"Rerank: {len(rerank)} candidates of the latency window scored inside the "
                     f"supernet ({100 * min(accs_r):.1f}-{100 * max(accs_r):.1f} %); the best kept.")
    return lines + [""]


"""The searched net against its reference points (``references/references.json`` of a run).

A run trains reference nets with the searched net's recipe and times their artifacts
interleaved with the searched net's (``pipeline.references``).  Here they are compared: the
best reference at equal or lower latency is the most accurate reference whose side-by-side
latency is at most the searched net's times (1 + tolerance), the tolerance being the session's
noise floor capped at ``MAX_TOLERANCE``: a reference slower only within the noise counts as
equally fast.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

LINE = "searched vs the best reference at equal or lower latency"
MAX_TOLERANCE = 0.05
#: name prefix of the searched net trained again at the references' epochs (``retrained-e<E>``),
#: trained when the references' epochs differ from the shipped net's: the comparison uses it
RETRAINED = "retrained-e"


# points by which the shipped net may beat its short-recipe twin before the line says that the
# references' recipe is too short to rank the architectures (sign-language photos: 97.8 % after
# 125 epochs, 78.3 % after 15)
SHORT_RECIPE_GAP = 5.0


def versus(searched: Mapping[str, Any], references: Sequence[Mapping[str, Any]], *,
           noise_floor: float | None = None) -> dict[str, Any]:
    """The comparison a run reports.  When the references were trained for other epochs than the
    shipped net, the searched net was trained again at theirs (a reference named
    ``retrained-e<E>``): the comparison is made at that equal recipe, at the shipped artifact's
    latency (the same network), and the line also gives the shipped net's accuracy."""
    again = next((r for r in references if str(r["name"]).startswith(RETRAINED)), None)
    if again is None:
        return best_reference(searched, references, noise_floor=noise_floor)
    same = {**again, "latency_ms": searched["latency_ms"]}
    v = best_reference(same, [r for r in references if r is not again], noise_floor=noise_floor)
    acc = searched.get("test_accuracy")
    shipped = f"{100 * acc:.2f} %" if isinstance(acc, (int, float)) else "not measured"
    v["shipped"] = {"name": searched["name"], "test_accuracy": acc,
                    "epochs": searched.get("epochs")}
    v["equal_recipe"] = {"name": again["name"], "epochs": again.get("epochs")}
    v["line"] += (f"; all at {again.get('epochs', '?')} epochs, the searched net retrained so "
                  f"({again['name']}); the shipped net after {searched.get('epochs', '?')} "
                  f"epochs: {shipped}")
    if isinstance(acc, (int, float)) and isinstance(again.get("test_accuracy"), (int, float)):
        gap = 100 * (float(acc) - float(again["test_accuracy"]))
        v["short_recipe_gap_points"] = gap
        if gap > SHORT_RECIPE_GAP:
            v["line"] += (f" ({gap:.1f} points above the retrained net: at {again.get('epochs')} "
                          "epochs the nets are far from trained, so this compares how fast they "
                          "learn, not what they reach; --references-epochs trains them longer)")
    return v


def best_reference(searched: Mapping[str, Any], references: Sequence[Mapping[str, Any]], *,
                   noise_floor: float | None = None) -> dict[str, Any]:
    """``searched`` and each of ``references``: ``name``, ``test_accuracy`` (0-1) and
    ``latency_ms``.  Returns the comparison: ``points`` (searched minus best reference, in
    percentage points; None when no reference is that fast), ``best`` (its row), ``fastest``
    (the fastest reference), ``tolerance`` and ``line`` (one line for report.md and the console)."""
    tol = min(MAX_TOLERANCE, max(0.0, float(noise_floor or 0.0)))
    rows = [r for r in references if _measured(r)]
    limit = float(searched["latency_ms"]) * (1 + tol)
    fast = [r for r in rows if float(r["latency_ms"]) <= limit]
    best = max(fast, key=lambda r: (r["test_accuracy"], -r["latency_ms"]), default=None)
    fastest = min(rows, key=lambda r: r["latency_ms"], default=None)
    out: dict[str, Any] = {
        "searched": searched["name"], "searched_accuracy": searched["test_accuracy"],
        "searched_latency_ms": searched["latency_ms"], "tolerance": tol,
        "references": len(rows), "at_equal_or_lower_latency": [r["name"] for r in fast],
        "best": _brief(best), "fastest": _brief(fastest),
        "points": None if best is None else
        100 * (float(searched["test_accuracy"]) - float(best["test_accuracy"])),
        "beats_all": best is None or float(searched["test_accuracy"]) > float(best["test_accuracy"]),
    }
    out["line"] = comparison_line(out)
    return out


def _measured(r: Mapping[str, Any]) -> bool:
    return isinstance(r.get("test_accuracy"), (int, float)) and \
        isinstance(r.get("latency_ms"), (int, float))


def _brief(r: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if r is None else {"name": r["name"], "test_accuracy": r["test_accuracy"],
                                   "latency_ms": r["latency_ms"]}


def comparison_line(c: Mapping[str, Any]) -> str:
    """``searched vs the best reference at equal or lower latency: +X.XX points (searched A % at
    L ms; best reference NAME B % at M ms)``, or why there is no such reference."""
    s = f"searched {100 * c['searched_accuracy']:.2f} % at {c['searched_latency_ms']:.3f} ms"
    b, f = c["best"], c["fastest"]
    if b is not None:
        return (f"{LINE}: {c['points']:+.2f} points ({s}; best reference {b['name']} "
                f"{100 * b['test_accuracy']:.2f} % at {b['latency_ms']:.3f} ms)")
    if f is None:
        return f"{LINE}: none ({s}; no reference was trained and timed)"
    return (f"{LINE}: none, every reference is slower ({s}; the fastest, {f['name']}, "
            f"{100 * f['test_accuracy']:.2f} % at {f['latency_ms']:.3f} ms)")


def session_text(refs: Mapping[str, Any]) -> str:
    """How the references of one run were made and timed (``references.json``), one paragraph."""
    s = refs["session"]
    lo, hi = refs.get("window_ms") or (None, None)
    names = [r["name"] for r in refs["references"]]
    w = (f"[{refs['window'][0]:g} T, {refs['window'][1]:g} T] = [{lo:.3f}, {hi:.3f}] ms"
         if lo is not None else "the searched net's window")
    rand = (f"the random nets are drawn uniformly from the searched space's nets predicted in {w}"
            if any(r.get("kind") == "random" for r in refs["references"]) else
            f"no random net (none of the space is predicted in {w}, or none was asked for)")
    tol = min(MAX_TOLERANCE, float(s.get("noise_floor") or 0))
    return (f"References ({', '.join(names) or 'none'}): {rand}; the hand-designed "
            "MobileNets are built from the same inverted-residual ops at the same input size "
            "(no squeeze-and-excitation, no h-swish). Each was trained with the searched net's "
            f"recipe (epochs: {refs['epochs']}) on the same data, exported as the same artifact "
            f"({s['format']}, {s['runtime_version']}) and timed interleaved with the searched "
            f"net's artifact: batch {s['batch_size']}, {s['threads']} thread(s), {s['rounds']} "
            f"rounds x ({s['warmup']} warm-up + {s['repeats']} calls), p10 per round, median over "
            f"rounds; noise floor {100 * float(s.get('noise_floor') or 0):.1f} %. Equal latency: "
            f"within {100 * tol:.1f} % (the noise floor, at most {100 * MAX_TOLERANCE:g} %).")

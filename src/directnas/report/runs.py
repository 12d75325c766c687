"""Finding finished runs: a pipeline run (with its reference nets, when it trained them), a train
folder, or a folder holding such folders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from directnas.errors import UserError
from directnas.utils.fileio import read_json
from directnas.space.arch import Arch


SKIP_DIRS = {"tb", "search", "train"}


# ---- finding and summarising runs --------------------------------------------------------------
@dataclass
class Run:
    """One finished (or searched-only) network in a run folder."""

    name: str
    kind: str  # 'searched' | 'baseline' | 'reference' (trained and timed beside a searched net)
    folder: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    arch: Arch | None = None
    search: dict[str, Any] | None = None
    train_rows: list[dict[str, Any]] = field(default_factory=list)
    owner: Path | None = None  # a reference: the pipeline run folder it was timed beside
    references: dict[str, Any] | None = None  # a searched run: its references/references.json

    @property
    def family(self) -> str:
        return "searched" if self.kind == "searched" else self.name.split("-")[0]

    @property
    def target_ms(self) -> float | None:
        return self.arch.meta.get("target_latency_ms") if self.arch else None


def _rows(folder: Path) -> list[dict[str, Any]]:
    p = folder / "curves.json"
    return read_json(p, what="curves file") if p.exists() else []


def load_run(folder: Path) -> Run | None:
    """The run in ``folder`` (pipeline run or train folder), or None if it holds none."""
    folder = Path(folder)
    if (folder / "search" / "arch.json").exists():
        arch = Arch.load(folder / "search" / "arch.json")
        search = read_json(folder / "search" / "search.json") \
            if (folder / "search" / "search.json").exists() else None
        m_path = folder / "train" / "metrics.json"
        t = arch.meta.get("target_latency_ms")
        name = f"searched@{t:g}ms" if t else f"searched:{folder.name}"
        return Run(name, "searched", folder, read_json(m_path) if m_path.exists() else {}, arch,
                   search, _rows(folder / "train"))
    if (folder / "metrics.json").exists():
        m = read_json(folder / "metrics.json")
        model = str(m.get("model", folder.name))
        searched = model.startswith("searched:")
        return Run(folder.name if searched else model, "searched" if searched else "baseline",
                   folder, m, None, None, _rows(folder))
    return None


def load_references(run: Run) -> list[Run]:
    """The reference nets of the pipeline run ``run`` (``references/references.json``), with
    the latencies of their side-by-side session; the searched net's latency becomes its
    artifact's in that session (the training-time figure kept as ``latency_ms_at_training``).
    Empty when the run trained none."""
    path = run.folder / "references" / "references.json"
    if run.kind != "searched" or not path.exists():
        return []
    refs = read_json(path, what="references file")
    s = refs["session"]
    how = {"latency_backend": s["runtime"], "latency_threads": s["threads"],
           "latency_batch_size": s["batch_size"], "latency_noise_floor": s.get("noise_floor"),
           "latency_reference_ms": s.get("reference_ms"), "latency_reference": s.get("reference"),
           "latency_side_by_side": {"rounds": s["rounds"], "warmup": s["warmup"],
                                    "repeats": s["repeats"], "stat": s["stat"],
                                    "nets": 1 + len(refs["references"]),
                                    "artifacts": s["runtime_version"]}}
    m = run.metrics
    if "latency_ms" in m and "latency_ms_at_training" not in m:
        m["latency_ms_at_training"] = m["latency_ms"]
    m.update(latency_ms=refs["searched"]["latency_ms"],
             latency_spread_ms=refs["searched"]["latency_spread_ms"], **how)
    run.references = refs
    out = []
    for r in refs["references"]:
        folder = path.parent / r["folder"]
        metrics = read_json(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
        metrics.setdefault("test_accuracy", r.get("test_accuracy"))
        metrics["latency_ms_at_training"] = metrics.get("latency_ms")
        metrics.update(latency_ms=r["latency_ms"], latency_spread_ms=r["latency_spread_ms"], **how)
        out.append(Run(r["name"], "reference", folder, metrics, owner=run.folder))
    return out


def find_runs(folders: list[str | Path], *, depth: int = 2) -> list[Run]:
    """Runs in ``folders`` and in their sub-folders (``depth`` levels); a pipeline run's
    reference nets follow it."""
    runs: list[Run] = []
    for f in map(Path, folders):
        if not f.is_dir():
            raise UserError(f"run folder {f} does not exist: give folders written by directnas run/train/baselines")
        run = load_run(f)
        if run is not None:
            runs += [run, *load_references(run)]
        elif depth > 0:
            subs = sorted(d for d in f.iterdir() if d.is_dir() and d.name not in SKIP_DIRS)
            runs += find_runs(subs, depth=depth - 1)
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.name} ({(r.owner or r.folder).name})"
    return runs

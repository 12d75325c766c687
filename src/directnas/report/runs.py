"""Finding finished runs: a pipeline run, a train folder, or a folder holding such folders."""

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
    kind: str  # 'searched' | 'baseline'
    folder: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    arch: Arch | None = None
    search: dict[str, Any] | None = None
    train_rows: list[dict[str, Any]] = field(default_factory=list)

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


def find_runs(folders: list[str | Path], *, depth: int = 2) -> list[Run]:
    """Runs in ``folders`` and in their sub-folders (``depth`` levels)."""
    runs: list[Run] = []
    for f in map(Path, folders):
        if not f.is_dir():
            raise UserError(f"run folder {f} does not exist: give folders written by directnas run/train/baselines")
        run = load_run(f)
        if run is not None:
            runs.append(run)
        elif depth > 0:
            subs = sorted(d for d in f.iterdir() if d.is_dir() and d.name not in SKIP_DIRS)
            runs += find_runs(subs, depth=depth - 1)
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.name} ({r.folder.name})"
    return runs

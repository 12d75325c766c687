"""Run folders: ``RunFolder`` names every path of a ``directnas run``; a stage refuses to
overwrite and keeps its resolved config beside its outputs."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from directnas.errors import UserError
from directnas.utils.fileio import write_json


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder (or of one target's folder inside it)::

        space.yaml                         the space searched (run folder only; --space takes it)
        latency.json, latency_stage.json   the profiled table (run folder only)
        latency_near.json, near_stage.json the table re-anchored near the target
        search/  arch.json, search.json    the search stage
        train/   model.pt, metrics.json    the training stage
        export/  export.json, target_check.json
        compress/ metrics.json, model.dnz  the compression stage (``run --compress-*``)
        references/<name>/, references.json  nets trained and timed beside the searched one
        report.md, report.json, *.png
        warmup_checkpoint.pt               the supernet after its warm-up, shared by the targets
        t<label>/                          one target's folder when a run has several
    """

    root: Path

    def target(self, label: str, *, several: bool) -> "RunFolder":
        """The folder of the target ``label``: ``t<label>/`` when a run has several, else this."""
        return RunFolder(self.root / f"t{label}") if several else self

    space = property(lambda self: self.root / "space.yaml")
    latency = property(lambda self: self.root / "latency.json")
    warmup = property(lambda self: self.root / "warmup_checkpoint.pt")
    near_latency = property(lambda self: self.root / "latency_near.json")
    search = property(lambda self: self.root / "search")
    arch = property(lambda self: self.root / "search" / "arch.json")
    search_log = property(lambda self: self.root / "search" / "search.json")
    train = property(lambda self: self.root / "train")
    model = property(lambda self: self.root / "train" / "model.pt")
    metrics = property(lambda self: self.root / "train" / "metrics.json")
    export = property(lambda self: self.root / "export")
    export_log = property(lambda self: self.root / "export" / "export.json")
    target_check = property(lambda self: self.root / "export" / "target_check.json")
    compress = property(lambda self: self.root / "compress")
    compress_metrics = property(lambda self: self.root / "compress" / "metrics.json")
    references = property(lambda self: self.root / "references")
    report = property(lambda self: self.root / "report.md")
    report_json = property(lambda self: self.root / "report.json")


def check_out_dir(out: Path, checkpoint: str, *, resume: bool, what: str) -> None:
    """The run folder may hold a checkpoint only when resuming (nothing is overwritten)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: give a folder path")
    if not resume and (out / checkpoint).exists():
        raise UserError(f"run folder {out} already holds a {what} ({checkpoint}): pass --resume "
                        "to continue it or choose a new --out")


def quiet_unless_main(is_main: bool) -> None:
    """Ranks other than 0 log warnings only (rank 0 speaks for the job)."""
    if not is_main:
        logging.getLogger("directnas").setLevel(logging.WARNING)


def save_resolved(out: Path, name: str, cfg: Any, extra: dict[str, Any]) -> None:
    write_json(out / name, {**dataclasses.asdict(cfg), **extra})

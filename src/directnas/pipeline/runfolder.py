"""Run folders: refuse to overwrite, and keep the resolved config beside the outputs."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from directnas.errors import UserError
from directnas.utils.fileio import write_json


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

"""TensorBoard event files and a JSON copy of per-epoch curves, fed by the loops' on_epoch hooks.

``EpochLog(folder, tag)`` writes ``folder/tb/`` (TensorBoard) and ``folder/curves.json`` (the same
rows, for the report's plots); rows replace earlier rows of the same epoch, so a resumed run
continues the file.  Without the ``tensorboard`` package only the JSON is written; under torchrun
only rank 0 writes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from directnas.utils.fileio import read_json, write_json

log = logging.getLogger(__name__)
CURVES = "curves.json"


def _writer(log_dir: Path) -> Any | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        log.warning("tensorboard is not installed: no event files in %s", log_dir)
        return None
    return SummaryWriter(log_dir=str(log_dir))


class EpochLog:
    """Per-epoch scalars of one loop (``tag`` = 'search' or 'train') in ``folder``."""

    def __init__(self, folder: str | Path, tag: str, *, tensorboard: bool = True) -> None:
        self.folder, self.tag = Path(folder), tag
        self.enabled = int(os.environ.get("RANK", "0")) == 0
        tensorboard = tensorboard and self.enabled
        path = self.folder / CURVES
        self.rows: list[dict[str, float]] = read_json(path, what="curves file") if path.exists() else []
        self.writer = _writer(self.folder / "tb") if tensorboard else None

    def add(self, epoch: int, row: dict[str, float]) -> None:
        """Record ``row`` for 1-based ``epoch``."""
        entry = {"epoch": epoch, **{k: float(v) for k, v in row.items() if k != "epoch"}}
        self.rows = [r for r in self.rows if r["epoch"] < epoch] + [entry]
        if not self.enabled:
            return
        write_json(self.folder / CURVES, self.rows)
        if self.writer is not None:
            for k, v in entry.items():
                if k != "epoch":
                    self.writer.add_scalar(f"{self.tag}/{k}", v, epoch)
            self.writer.flush()

    def search_row(self, row: dict[str, float]) -> None:
        """``Searcher.run``'s on_epoch (rows carry a 1-based ``epoch``)."""
        self.add(int(row["epoch"]), row)

    def train_row(self, epoch: int, row: dict[str, float]) -> None:
        """``train_net``'s on_epoch (0-based ``epoch``)."""
        self.add(epoch + 1, row)

    def probabilities(self, history: list[dict[str, Any]], ops: list[list[str]]) -> None:
        """Each layer's op probabilities over alpha steps (from ``search.json``'s history)."""
        if self.writer is None:
            return
        for h in history:
            for i, (p, names) in enumerate(zip(h["probs"], ops)):
                for name, v in zip(names, p):
                    self.writer.add_scalar(f"probs/layer{i:02d}/{name}", v, int(h["alpha_steps"]))
        self.writer.flush()

    def final(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{self.tag}/{k}", float(v), step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

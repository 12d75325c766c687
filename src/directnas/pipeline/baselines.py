"""Named reference models trained with one recipe, one folder each, and a report over them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from directnas.data.sources import DataLike
from directnas.errors import UserError
from directnas.models.registry import model_names
from directnas.pipeline.checks import check_entry
from directnas.pipeline.outdir import claimed
from directnas.pipeline.run import train_stage
from directnas.pipeline.stages import options_key
from directnas.pipeline.train import train
from directnas.report.writer import write_report
from directnas.utils.fileio import write_json

ROW_KEYS = ("test_accuracy", "latency_ms", "predicted_latency_ms", "params", "macs",
            "latency_backend")


def baselines(models: Sequence[str], data: DataLike, *, out: str | Path,
              train_options: Mapping[str, Any], tensorboard: bool = True,
              say: Callable[[str], None] = print, force: bool = False) -> list[dict[str, Any]]:
    """Train each named model of ``models`` on ``data`` in ``out/<model>/`` (``train_options``:
    keyword options of ``directnas.train``; finished models are skipped), write
    ``out/baselines.json`` and a report over the family; returns one row per model.  ``out``
    must be new, empty or a baselines folder (``force``: any folder that is no other
    command's)."""
    unknown = [m for m in models if m not in model_names()]
    if unknown or not models:
        raise UserError(f"unknown model(s) {', '.join(unknown) or '(none given)'}: use --models with "
                        f"names from {', '.join(model_names())}")
    out = Path(out)
    check_entry("baselines", out=out, force=force, backend=train_options.get("backend"),
                input_size=train_options.get("input_size"))
    with claimed(out, "baselines"):
        rows = _train_each(models, data, out, train_options, tensorboard=tensorboard, say=say)
        write_json(out / "baselines.json", {"models": rows})
        write_report([out], out, title=f"baselines {out.name}")
    return rows


def _train_each(models: Sequence[str], data: DataLike, out: Path,
                train_options: Mapping[str, Any], *, tensorboard: bool,
                say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each model trained in ``out/<model>/`` (skipped when done); one row each."""
    rows = []
    for name in models:
        folder = out / name
        say(f"== {name} -> {folder}")
        m, _ = train_stage(folder, {**options_key(train_options), "model": name},
                           tensorboard=tensorboard, say=say,
                           fit=lambda row, name=name, folder=folder: train(
                               name, data, out=folder, resume=True, on_epoch=row, **train_options))
        rows.append({"model": name, "folder": str(folder.resolve()),
                     **{k: m[k] for k in ROW_KEYS if k in m}})
    return rows

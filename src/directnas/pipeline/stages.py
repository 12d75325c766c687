"""Stage bookkeeping of a resumable run: each stage folder records the options it was made with
(``stage.json``); a finished stage is skipped when called again with the same options, and
other options are refused rather than mixing two configs."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from directnas.data.datasets import Dataset
from directnas.errors import UserError
from directnas.report.tblog import EpochLog
from directnas.utils.fileio import read_json, write_json

if TYPE_CHECKING:
    from directnas.pipeline.train import TrainResult

log = logging.getLogger(__name__)

STAGE = "stage.json"
# options that do not change a stage's result (threads: the order of float sums only, as a
# resumed search allows; the latency protocol's threads are part of its "protocol")
NOT_IN_KEY = {"checkpoint_every", "device", "threads"}


def file_digest(path: str | Path | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] \
        if path and Path(path).is_file() else None


def data_key(data: Any, dataset: Dataset | None = None) -> str:
    """What names the data in a stage key: its path or name, or a digest of in-memory data."""
    if isinstance(data, (str, Path)):
        return str(data)
    assert dataset is not None
    h = hashlib.sha256(dataset.train.labels.numpy().tobytes())
    h.update(repr((dataset.train.shape, dataset.test.shape)).encode())
    return f"in-memory:{h.hexdigest()[:16]}"


def enter_stage(folder: Path, key: dict[str, Any], *, done: bool, name: str = STAGE) -> bool:
    """Record ``key`` (the options of this stage) in ``folder/name``, or check it against the
    recorded one; returns ``done``.  Raises UserError if the folder was made with other options."""
    key = json.loads(json.dumps(key, default=str))
    path = folder / name
    if path.exists():
        old = read_json(path, what="stage file")
        diff = [f"{k}: {old.get(k)!r} -> {key.get(k)!r}" for k in sorted(set(old) | set(key))
                if old.get(k) != key.get(k) and k not in NOT_IN_KEY]  # older folders keep them
        if diff:
            raise UserError(f"{folder} was made with other options ({'; '.join(diff[:4])}): re-run with "
                            f"the same options, use a new --out, or delete {folder} to redo it")
    elif done:
        raise UserError(f"{folder} holds outputs not made by this command: use a new --out")
    else:
        write_json(path, key)
    return done


def options_key(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that change a stage's result, with config files named by their content."""
    key = {k: v for k, v in options.items() if k not in NOT_IN_KEY and not callable(v)}
    if key.get("config_file"):
        key["config_digest"] = file_digest(key["config_file"])
    return key


def train_stage(folder: Path, key: dict[str, Any], *,
                fit: Callable[[Callable[[int, dict[str, float]], None]], TrainResult],
                tensorboard: bool, say: Callable[[str], None] = log.info,
                on_epoch: Callable[[int, dict[str, float]], None] | None = None
                ) -> tuple[dict[str, Any], TrainResult | None]:
    """``fit(on_epoch)`` trains into ``folder`` (skipped when done with the options ``key``),
    with curves.json + TensorBoard; returns its metrics and its result (None when skipped)."""
    if enter_stage(folder, key, done=(folder / "metrics.json").exists()):
        say(f"train: done, reusing {folder / 'metrics.json'}")
        return read_json(folder / "metrics.json"), None
    elog = EpochLog(folder, "train", tensorboard=tensorboard)

    def row(e: int, r: dict[str, float]) -> None:
        elog.train_row(e, r)
        if on_epoch is not None:
            on_epoch(e, r)

    try:
        result = fit(row)
        elog.final({k: result.metrics[k] for k in ("test_accuracy", "latency_ms")
                    if k in result.metrics}, step=len(elog.rows))
    finally:
        elog.close()
    return result.metrics, result

"""The checks of a library call's inputs that come before any work: the options every command
shares (backend, targets, input size, counts, the output folder) before the data is read, and
the batch sizes against the data as soon as it is read, before a table is profiled.  Each
failure is one ``UserError`` line naming the problem and the fix; nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from directnas import runtimes
from directnas.data.datasets import Dataset
from directnas.errors import UserError
from directnas.latency.target import parse_target
from directnas.pipeline.outdir import check_out


def check_count(value: Any, flag: str, *, low: int = 1, example: int = 1) -> None:
    """``value`` is an integer >= ``low`` (``flag`` names it in the message)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{flag} must be an integer >= {low}, got {value!r}: pass e.g. "
                        f"{flag} {example}")


def check_entry(command: str, *, out: str | Path | None = None, force: bool = False,
                inputs: Iterable[str | Path | None] = (), backend: str | None = None,
                targets: Iterable[Any] = (), input_size: int | None = None) -> None:
    """What every command checks first: the backend is a runtime, each target is finite and
    positive, the input size is positive, ``out`` may be written by ``command``
    (``pipeline.outdir.check_out``)."""
    if backend is not None:
        runtimes.get(backend)
    for t in targets:
        if t is not None:
            parse_target(t)
    if input_size is not None:
        check_count(input_size, "--input-size", example=32)
    if out is not None:
        check_out(out, command, force=force, inputs=inputs)


def check_batch(batch_size: int, images: int, *, world: int = 1, what: str = "training",
                flag: str = "--batch-size") -> None:
    """A batch of ``batch_size`` fits in the ``images`` split among ``world`` processes (every
    epoch needs one full batch per process)."""
    if batch_size > images // world:
        raise UserError(f"batch size {batch_size} is larger than the {images // world} {what} "
                        f"images per process: lower {flag} (to {max(1, images // world)} or less)")


def search_batch(batch_size: int, valid_size: int, dataset: Dataset, *, world: int = 1) -> None:
    """The search's split of the training images (``valid_size`` of them drive alpha) leaves a
    batch for the weight steps."""
    n = len(dataset.train)
    if not 0 < valid_size < n:
        raise UserError(f"validation size {valid_size} must be between 1 and {n - 1} (the "
                        f"{n} training images): lower valid_size")
    check_batch(batch_size, n - valid_size, world=world, what="training (after the validation "
                "split)")

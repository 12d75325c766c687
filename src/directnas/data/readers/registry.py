"""The readers registry: one reader per layout of data on disk, each a ``detect`` (does this
folder hold my layout?) and a ``read`` (the folder as a ``Dataset``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from directnas.data.datasets import Dataset


class ReadFn(Protocol):
    def __call__(self, root: Path, *, size: int | None, skip_bad_images: bool) -> Dataset: ...


class DetectFn(Protocol):
    def __call__(self, root: Path) -> bool: ...


@dataclass(frozen=True)
class Reader:
    """A layout of data on disk: ``detect(root)`` says whether ``root`` holds it, ``read``
    loads it (``size``: the side images are resized to, where the reader resizes while
    reading; ``skip_bad_images``: skip unreadable images instead of stopping)."""

    name: str
    layout: str  # the layout in a few words, for the error that lists the accepted ones
    detect: DetectFn
    read: ReadFn


READERS: dict[str, Reader] = {}


def register(reader: Reader) -> Reader:
    """Adds ``reader`` to the registry (detection tries readers in registration order)."""
    READERS[reader.name] = reader
    return reader


def detect(root: Path) -> Reader | None:
    """The first registered reader whose ``detect`` accepts ``root`` (None: no layout fits)."""
    return next((r for r in READERS.values() if r.detect(root)), None)


def accepted_layouts() -> str:
    """The registered layouts, for an error message."""
    return "; ".join(f"{r.name} ({r.layout})" for r in READERS.values())

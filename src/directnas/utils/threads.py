"""Intra-op thread counts set for a block of work and restored after it."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (``None``: as they are); the count found
    on entry is restored on exit.  When the count is already ``n`` nothing is set, so nesting
    costs nothing and a runner timed inside keeps the thread pool it warmed up with."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)

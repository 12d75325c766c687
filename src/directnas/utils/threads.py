"""Intra-op thread counts set for a block of work and restored after it."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch


def usable_cores() -> int:
    """Intra-op threads a search or a training uses by default: the cores this process may run
    on, shared among the processes of a ``torchrun`` on this machine (``LOCAL_WORLD_SIZE``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))


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

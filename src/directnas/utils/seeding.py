"""Seeds: set once, where a library call begins, before anything random happens.

``seed_everything`` is called at the entry of ``search``, ``train``, ``random_search`` and the
compression pipeline, before the net is built and before any data is drawn; the stages below
it draw from explicit ``torch.Generator``s where they can (data order, augmentation, gate
sampling, validation batches) and from the process's RNGs where PyTorch offers nothing else
(weight initialisation, dropout).  Latency measurement, which feeds random inputs to the nets
it times, leaves the process's RNGs as it found them (``keeps_rng``), so whether a table was
profiled or read from the cache never changes a trained net.
"""

from __future__ import annotations

import functools
import random
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import numpy as np
import torch

from directnas.errors import UserError

F = TypeVar("F", bound=Callable[..., object])


def check_seed(seed: object) -> None:
    """A seed every RNG takes: an integer in [0, 2**32)."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32:
        raise UserError(f"seed must be an integer in [0, 2**32), got {seed!r}: pass e.g. --seed 0")


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also every CUDA device (lazily, where CUDA is not started yet)


def _started_cuda_devices() -> list[int]:
    return list(range(torch.cuda.device_count())) \
        if torch.cuda.is_available() and torch.cuda.is_initialized() else []


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """The block draws from RNGs seeded with ``seed`` (``seed_everything``); python's, numpy's
    and torch's RNG states are put back on exit, so the stream around the block is unchanged."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=_started_cuda_devices()):
        seed_everything(seed)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def keeps_rng(fn: F) -> F:
    """``fn`` run under ``torch.random.fork_rng``: the torch RNG (and that of every started
    CUDA device) is put back as it was when ``fn`` returns or raises."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        with torch.random.fork_rng(devices=_started_cuda_devices()):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

"""The one weight-training loop: SGD steps under a cosine LR over epochs of ``Batches``, with
hooks.  The search's weight steps (``Searcher``), ``train_net`` and compression fine-tuning
(``compress.finetune``) run it.

What it owns: the per-step LR, the forward/backward (mixed precision on CUDA with ``amp``), the
gradient average over ranks (``Dist``), the NaN guard, mid-epoch checkpoints every
``checkpoint_every`` steps, and the state exact resumption needs (``LoopState`` and the batch
generator's state at the epoch start).  What the caller adds through hooks: ``before_step``
(e.g. sample a path), ``after_step`` (an alpha step, an EMA update), ``save`` (its checkpoint)
and what it does at an epoch end.

Also the pieces exact resumption needs: RNG states that survive a ``weights_only`` load,
``epoch_batches`` (skip ahead inside an epoch without changing the data order or the
augmentation draws) and ``check_finite`` (never checkpoint NaN/inf).
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from directnas.data.datasets import Batches
from directnas.utils.device import autocast
from directnas.utils.distributed import Dist
from directnas.errors import UserError

Progress = Callable[[Iterable, str, int], Iterable]


def no_progress(it: Iterable, desc: str, n: int) -> Iterable:
    return it


# ---- exact resumption ------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """python/numpy/torch (and CUDA, once used) RNG states, as types a ``weights_only`` load
    accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    s = {"python": random.getstate(),
         "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
         "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict[str, Any]) -> None:
    random.setstate(s["python"])
    kind, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def epoch_batches(batches: Batches, steps: int, *,
                  start: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, x, y) of the first ``steps`` batches of one pass, from ``start`` on.

    Skipped batches are still drawn (and augmented), so the batch generator ends the epoch in
    the state an uninterrupted epoch leaves it: set it to the epoch's start state first.
    """
    for i, (x, y) in enumerate(itertools.islice(iter(batches), steps)):
        if i >= start:
            yield i, x, y


def check_finite(tensors: Iterable[torch.Tensor], what: str, fix: str, *,
                 checkpointed: bool = True) -> None:
    """UserError if any value is NaN/inf: the run stops before a bad checkpoint is written
    (``checkpointed=False``: a loop that writes none, and the message says nothing of one)."""
    for t in tensors:
        if not bool(torch.isfinite(t).all()):
            raise UserError(f"{what} became NaN/inf: {fix}" +
                            ("; the last good checkpoint is kept (continue from it with --resume)"
                             if checkpointed else ""))


def cosine_lr(step: int, total: int, base: float) -> float:
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


# ---- the loop --------------------------------------------------------------------------------
@dataclass
class LoopState:
    epoch: int = 0  # epochs completed
    step: int = 0  # weight steps done
    epoch_step: int = 0  # batches of the current epoch already done (mid-epoch checkpoints)
    epoch_sums: dict[str, float] = field(default_factory=dict)  # running sums of this epoch


class Trainer:
    """Weight steps of ``net`` with ``opt`` on ``batches``: ``epochs`` x ``steps_per_epoch``
    steps, the LR of every param group on a cosine from ``lr`` to 0."""

    def __init__(self, net: nn.Module, opt: torch.optim.Optimizer, batches: Batches, *,
                 lr: float, epochs: int, steps_per_epoch: int, state: LoopState,
                 label_smoothing: float = 0.0, device: torch.device = torch.device("cpu"),
                 amp: bool = False, dist: Dist | None = None, checkpoint_every: int = 0,
                 fix: str = "lower the learning rate") -> None:
        self.net, self.opt, self.batches, self.state = net, opt, batches, state
        self.lr, self.steps_per_epoch = lr, steps_per_epoch
        self.total_steps = epochs * steps_per_epoch
        self.label_smoothing, self.device, self.amp = label_smoothing, device, amp
        self.dist = dist or Dist()
        self.checkpoint_every, self.fix = checkpoint_every, fix
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self.epoch_gen = batches.generator.get_state()  # batch generator at the epoch start

    def run_epoch(self, *, desc: str, progress: Progress = no_progress,
                  before_step: Callable[[int], None] | None = None,
                  after_step: Callable[[int, dict[str, float]], None] | None = None,
                  save: Callable[[], Any] | None = None,
                  on_step: Callable[[int], None] | None = None) -> dict[str, float]:
        """One epoch (or its rest, after a mid-epoch resume); returns its sums (``loss``: the
        sum of the batch losses, ``n``: batches, plus what ``after_step`` added)."""
        st, steps = self.state, self.steps_per_epoch
        self.batches.generator.set_state(self.epoch_gen)
        start = st.epoch_step
        sums: dict[str, float] = {"loss": 0.0, "n": 0, **st.epoch_sums}
        for i, x, y in progress(epoch_batches(self.batches, steps, start=start), desc, steps - start):
            lr = cosine_lr(st.step, self.total_steps, self.lr)
            for g in self.opt.param_groups:
                g["lr"] = lr
            if before_step is not None:
                before_step(i)
            with autocast(self.device, self.amp):
                loss = F.cross_entropy(self.net(x), y, label_smoothing=self.label_smoothing)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            loss = self.dist.all_reduce_grads(self.params, extra=loss.detach())
            check_finite([loss], f"the training loss at step {st.step}", self.fix,
                         checkpointed=save is not None)
            self.opt.step()
            sums["loss"] += float(loss)
            sums["n"] += 1
            st.step += 1
            if after_step is not None:
                after_step(i, sums)
            st.epoch_step = i + 1
            st.epoch_sums = dict(sums)
            if save is not None and self.checkpoint_every and st.step % self.checkpoint_every == 0 \
                    and i + 1 < steps:
                save()
            if on_step is not None:
                on_step(st.step)
        st.epoch += 1
        st.epoch_step = 0
        st.epoch_sums = {}
        self.epoch_gen = self.batches.generator.get_state()
        return sums

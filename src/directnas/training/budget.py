"""Budgets scaled to the data size: on a small dataset an epoch is too short to count in.

The default budgets are set on large data (Fashion-MNIST, CIFAR-10: hundreds of steps per
pass).  A folder of 2,000 photos has about 13 steps per pass at batch 128, so 20 epochs would be
260 weight updates.  Where a pass over the data is shorter than a nominal epoch of
``epoch_steps`` steps, ``scaled_epochs`` makes each epoch of the budget that many steps, made of
as many passes as it takes: ``epochs`` becomes ``ceil(epochs * epoch_steps / steps_per_pass)``
passes.  Data with long passes keeps its epochs unchanged.

- Training from scratch (an unset ``TrainConfig.epochs``): ``TRAIN_EPOCHS`` (20) epochs of at
  least ``TRAIN_EPOCH_STEPS`` (75) steps, i.e. at least 1,500 weight updates.
- The search (``warmup_epochs`` and ``epochs`` when neither is set): epochs of at least
  ``max_steps`` (330) steps, the budget of a search on large data.
"""

from __future__ import annotations

import math

TRAIN_EPOCHS = 20  # epochs of training from scratch unless set
TRAIN_EPOCH_STEPS = 75  # the fewest weight steps an epoch of training counts (20 x 75 = 1,500)


def steps_per_pass(images: int, batch_size: int, *, world: int = 1,
                   max_steps: int | None = None) -> int:
    """Weight steps of one pass over ``images`` (full batches per process; ``max_steps`` caps
    an epoch)."""
    steps = (images // max(1, world)) // batch_size
    return min(steps, max_steps) if max_steps is not None else steps


def scaled_epochs(epochs: int, steps_per_pass: int, epoch_steps: int) -> int:
    """``epochs`` epochs of at least ``epoch_steps`` steps, as passes of ``steps_per_pass``
    steps: ``epochs`` itself when a pass is that long, else
    ``ceil(epochs * epoch_steps / steps_per_pass)``."""
    if steps_per_pass <= 0 or steps_per_pass >= epoch_steps:
        return epochs
    return max(epochs, math.ceil(epochs * epoch_steps / steps_per_pass))


def train_epochs(images: int, batch_size: int, *, world: int = 1,
                 max_steps: int | None = None) -> int:
    """The epochs of training from scratch when none is set: ``TRAIN_EPOCHS`` epochs of at
    least ``TRAIN_EPOCH_STEPS`` steps on ``images`` training images (epochs capped at
    ``max_steps`` steps are a short run's: ``TRAIN_EPOCHS`` of them)."""
    if max_steps is not None:
        return TRAIN_EPOCHS
    return scaled_epochs(TRAIN_EPOCHS, steps_per_pass(images, batch_size, world=world),
                         TRAIN_EPOCH_STEPS)

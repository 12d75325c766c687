"""Train a standalone network from scratch and evaluate it (SGD nesterov, cosine LR).

Also the pieces search and training share for exact resumption: RNG states that survive a
``weights_only`` load, ``epoch_batches`` (skip ahead inside an epoch without changing the data
order or the augmentation draws) and ``check_finite`` (never checkpoint NaN/inf).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from directnas.data import Batches, Dataset
from directnas.distributed import Dist
from directnas.errors import UserError
from directnas.fileio import remove_stale_temps, torch_load, torch_save

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 20  # ~2 min each for a searched net on 2 cores: search + train <= 60 min
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    augment: bool = True  # random crop + flip of the training images
    random_erasing: float = 0.0  # probability per training image (0: off)
    ema_decay: float = 0.0  # exponential moving average of the weights (0: off; e.g. 0.999)
    seed: int = 0
    threads: int = 2
    channels_last: bool = True  # faster depthwise training on CPU
    max_steps: int | None = None  # cap on steps per epoch (quick runs)
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0: epoch ends only)


TRAIN_CHECKPOINT = "train_checkpoint.pt"


# ---- exact resumption ------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """python/numpy/torch global RNG states, as types a ``weights_only`` load accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
            "torch": torch.get_rng_state()}


def set_rng_state(s: dict[str, Any]) -> None:
    random.setstate(s["python"])
    kind, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(s["torch"])


def epoch_batches(batches: Batches, steps: int, *,
                  start: int = 0) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, x, y) of the first ``steps`` batches of one pass, from ``start`` on.

    Skipped batches are still drawn (and augmented), so the batch generator ends the epoch in
    the state an uninterrupted epoch leaves it: set it to the epoch's start state first.
    """
    for i, (x, y) in enumerate(itertools.islice(iter(batches), steps)):
        if i >= start:
            yield i, x, y


def check_finite(tensors: Iterable[torch.Tensor], what: str, fix: str) -> None:
    """UserError if any value is NaN/inf: the run stops before a bad checkpoint is written."""
    for t in tensors:
        if not bool(torch.isfinite(t).all()):
            raise UserError(f"{what} became NaN/inf: {fix}; the last good checkpoint is kept "
                            "(continue from it with --resume)")


def model_digest(net: nn.Module) -> str:
    """A short hash of the state_dict's names and shapes (refuses another model's checkpoint)."""
    sig = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    return hashlib.sha256(repr(sig).encode()).hexdigest()[:16]


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def count_macs(net: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward at batch 1 (convs and linears)."""
    macs = 0

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        macs += int(out.numel() // out.shape[0]) * k

    def lin_hook(m: nn.Linear, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        macs += m.in_features * m.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(lin_hook) for m in net.modules() if isinstance(m, nn.Linear)]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, *input_shape))
    net.train(was_training)
    for h in hooks:
        h.remove()
    return macs


class FlipAverage(nn.Module):
    """Test-time augmentation: the mean of the softmax of ``net`` on an image and on its mirror
    image (one forward pass on a batch twice the size).  Returns log-probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.net(torch.cat([x, x.flip(3)])).softmax(1)
        return ((p[:len(x)] + p[len(x):]) / 2).log()


@torch.no_grad()
def evaluate(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *,
             flip_tta: bool = False) -> dict[str, float]:
    """Accuracy and mean cross-entropy; with ``flip_tta`` of ``FlipAverage(net)``."""
    net.eval()
    model = FlipAverage(net) if flip_tta else net
    correct, total, loss = 0, 0, 0.0
    for x, y in batches:
        out = model(x)
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        total += int(y.numel())
    net.train()
    return {"accuracy": correct / max(total, 1), "loss": loss / max(total, 1)}


def cosine_lr(step: int, total: int, base: float) -> float:
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def train_net(net: nn.Module, data: Dataset, cfg: TrainConfig, *,
              progress: Callable[[Iterable, str, int], Iterable] = lambda it, desc, n: it,
              on_epoch: Callable[[int, dict[str, float]], None] | None = None,
              checkpoint: str | Path | None = None, resume: bool = False,
              dist: Dist | None = None, flip_tta: bool = False) -> dict[str, float]:
    """Train on data.train, evaluate on data.test; returns the final metrics (with ``flip_tta``
    also ``accuracy_flip_tta``, the test accuracy of ``FlipAverage(net)``).

    With ``checkpoint`` the full state is written there (atomically) at every epoch end and
    every ``cfg.checkpoint_every`` steps; ``resume`` continues from it to the same weights as an
    uninterrupted run.  ``dist`` shards the batches and averages gradients over the ranks
    (only rank 0 writes the checkpoint).
    """
    dist = dist or Dist()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    train = Batches(data.train, batch_size=cfg.batch_size, mean=data.mean, std=data.std,
                    augment=cfg.augment, seed=cfg.seed, drop_last=True,
                    channels_last=cfg.channels_last, erase=cfg.random_erasing,
                    rank=dist.rank, world=dist.world)
    if len(train) == 0:
        raise UserError(f"batch size {cfg.batch_size} is larger than the {len(data.train) // dist.world} "
                        "training images per process: lower --train-batch-size")
    test = Batches(data.test, batch_size=512, mean=data.mean, std=data.std, shuffle=False,
                   channels_last=cfg.channels_last)
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    params = list(net.parameters())
    # the EMA copy averages the weights and the BatchNorm statistics after every step; the
    # trained net ends with its values (the net that is saved, evaluated and timed)
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                        use_buffers=True) if cfg.ema_decay > 0 else None
    steps_per_epoch = len(train) if cfg.max_steps is None else min(len(train), cfg.max_steps)
    total = cfg.epochs * steps_per_epoch
    st: dict[str, Any] = {"epoch": 0, "step": 0, "epoch_step": 0, "running": 0.0, "seen": 0,
                          "epoch_gen": train.generator.get_state()}
    path = Path(checkpoint) if checkpoint is not None else None

    def save() -> None:
        check_finite(params, "a weight", "lower --train-lr")
        if path is None or not dist.is_main:
            return
        torch_save(path, {"kind": "directnas-train", "model_digest": model_digest(net),
                          "config": asdict(cfg), "net": net.state_dict(), "opt": opt.state_dict(),
                          "state": st, "rng": rng_state(),
                          "ema": None if ema is None else ema.state_dict()})

    if resume and path is not None and path.exists():
        ck = load_train_checkpoint(path, net)
        net.load_state_dict(ck["net"])
        opt.load_state_dict(ck["opt"])
        if (ema is None) != (ck.get("ema") is None):
            raise UserError(f"{path} was written {'without' if ema else 'with'} --train-ema: "
                            "resume with the same options, or train in a new --out")
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        st = ck["state"]
        set_rng_state(ck["rng"])
        remove_stale_temps(path.parent)
        log.info("resumed training at epoch %d, step %d", st["epoch"], st["step"])
    net.train()
    while st["epoch"] < cfg.epochs:
        epoch = st["epoch"]
        train.generator.set_state(st["epoch_gen"])
        start = st["epoch_step"]
        it = epoch_batches(train, steps_per_epoch, start=start)
        for i, x, y in progress(it, f"train {epoch + 1}/{cfg.epochs}", steps_per_epoch - start):
            for g in opt.param_groups:
                g["lr"] = cosine_lr(st["step"], total, cfg.lr)
            loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            loss = dist.all_reduce_grads(params, extra=loss.detach())
            check_finite([loss], f"the training loss at step {st['step']}", "lower --train-lr")
            opt.step()
            if ema is not None:
                ema.update_parameters(net)
            st["running"] += float(loss) * y.numel()
            st["seen"] += y.numel()
            st["step"] += 1
            st["epoch_step"] = i + 1
            if cfg.checkpoint_every and st["step"] % cfg.checkpoint_every == 0 \
                    and i + 1 < steps_per_epoch:
                save()
        row = {"train_loss": st["running"] / max(st["seen"], 1)}
        st.update(epoch=epoch + 1, epoch_step=0, running=0.0, seen=0,
                  epoch_gen=train.generator.get_state())
        dist.broadcast_tensors(net.buffers())  # BatchNorm statistics: rank 0's, as DDP does
        if ema is not None:
            dist.broadcast_tensors(ema.module.buffers())
        save()
        if on_epoch is not None:
            on_epoch(epoch, row)
    if ema is not None:
        net.load_state_dict(ema.module.state_dict())
    result = evaluate(net, test)
    if flip_tta:
        result["accuracy_flip_tta"] = evaluate(net, test, flip_tta=True)["accuracy"]
    return result


def load_train_checkpoint(path: Path, net: nn.Module) -> dict[str, Any]:
    ck = torch_load(path)
    if not isinstance(ck, dict) or ck.get("kind") != "directnas-train":
        raise UserError(f"{path} is not a directnas training checkpoint: move it away or use another --out")
    if ck.get("model_digest") != model_digest(net):
        raise UserError(f"checkpoint {path} was written for another model: train this one in a new --out")
    return ck

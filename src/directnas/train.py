"""Train a standalone network from scratch and evaluate it (SGD nesterov, cosine LR)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from directnas.data import Batches, Dataset

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 2
    channels_last: bool = True  # faster depthwise training on CPU
    max_steps: int | None = None  # cap on steps per epoch (quick runs)


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


@torch.no_grad()
def evaluate(net: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    net.eval()
    correct, total, loss = 0, 0, 0.0
    for x, y in batches:
        out = net(x)
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
        total += int(y.numel())
    net.train()
    return {"accuracy": correct / max(total, 1), "loss": loss / max(total, 1)}


def cosine_lr(step: int, total: int, base: float) -> float:
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def train_net(net: nn.Module, data: Dataset, cfg: TrainConfig, *,
              progress: Callable[[Iterable, str, int], Iterable] = lambda it, desc, n: it,
              on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Train on data.train, evaluate on data.test; returns the final metrics."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    train = Batches(data.train, batch_size=cfg.batch_size, mean=data.mean, std=data.std,
                    augment=True, seed=cfg.seed, drop_last=True, channels_last=cfg.channels_last)
    test = Batches(data.test, batch_size=512, mean=data.mean, std=data.std, shuffle=False,
                   channels_last=cfg.channels_last)
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    steps_per_epoch = len(train) if cfg.max_steps is None else min(len(train), cfg.max_steps)
    total = cfg.epochs * steps_per_epoch
    step = 0
    net.train()
    for epoch in range(cfg.epochs):
        running, seen = 0.0, 0
        for i, (x, y) in enumerate(progress(train, f"train {epoch + 1}/{cfg.epochs}", steps_per_epoch)):
            if i >= steps_per_epoch:
                break
            for g in opt.param_groups:
                g["lr"] = cosine_lr(step, total, cfg.lr)
            loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach()) * y.numel()
            seen += y.numel()
            step += 1
        if on_epoch is not None:
            on_epoch(epoch, {"train_loss": running / max(seen, 1)})
    return evaluate(net, test)

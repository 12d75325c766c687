"""Train a standalone network from scratch and evaluate it (SGD nesterov, cosine LR).

The loop itself is ``trainer.Trainer`` (shared with the search's weight steps); this module
adds the recipe (param groups without weight decay on norms and biases, label smoothing,
random erasing, EMA of the weights), the training checkpoint and the evaluation.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from directnas.data.datasets import Batches, Dataset
from directnas.utils.device import autocast, check_amp, resolve_device
from directnas.utils.distributed import Dist
from directnas.errors import UserError
from directnas.utils.fileio import remove_stale_temps, torch_load, torch_save
from directnas.config import check_int
from directnas.training.budget import (TRAIN_EPOCH_STEPS, TRAIN_EPOCHS, steps_per_pass,
                                       train_epochs)
from directnas.training.trainer import (LoopState, Progress, Trainer, check_finite, cosine_lr,  # noqa: F401
                               epoch_batches, no_progress, rng_state, set_rng_state)
from directnas.utils.threads import torch_threads, usable_cores

log = logging.getLogger(__name__)


# training-recipe defaults of named models, below a config file and explicit options: crop + flip
# costs the MLP LeNet-300-100 about 2 points on Fashion-MNIST; L2 5e-4 is what its pruning
# retrains with (docs/compression.md), and `directnas compress` retrains with the model's recipe
MODEL_RECIPES: dict[str, dict[str, Any]] = {
    "lenet-300-100": {"augment": False, "weight_decay": 5e-4}}
# the options `directnas compress` retrains with unless told otherwise (stored in model.pt)
RECIPE_KEYS = ("augment", "label_smoothing", "weight_decay", "lr", "batch_size", "epochs",
               "random_erasing")


@dataclass
class TrainConfig:
    # None: 20 (~2 min each for a searched net on Fashion-MNIST on 2 cores), raised on small
    # data to at least 1,500 weight updates (training.budget); resolve_epochs sets it
    epochs: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    augment: bool = True  # random crop + flip of the training images
    random_erasing: float = 0.0  # probability per training image (0: off)
    ema_decay: float = 0.0  # exponential moving average of the weights (0: off; e.g. 0.999)
    seed: int = 0
    threads: int = field(default_factory=usable_cores)  # intra-op threads (the usable cores)
    channels_last: bool = True  # faster depthwise training on CPU
    max_steps: int | None = None  # cap on steps per epoch (quick runs)
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0: epoch ends only)
    device: str = "auto"  # cpu, cuda, cuda:N or auto (CUDA when there is one)
    amp: bool = False  # bfloat16 autocast (CUDA only)


def check_train_config(cfg: TrainConfig) -> None:
    """One-line errors for option values no training can run with (the CLI's and the API's)."""
    for key, low in (("epochs", 0), ("batch_size", 1), ("checkpoint_every", 0), ("threads", 1)):
        if getattr(cfg, key) is not None or key != "epochs":
            check_int(getattr(cfg, key), key, low, "training")
    if cfg.max_steps is not None:
        check_int(cfg.max_steps, "max_steps", 1, "training")
    if not isinstance(cfg.random_erasing, (int, float)) or not 0.0 <= cfg.random_erasing <= 1.0:
        raise UserError("training option random_erasing must be in [0, 1], got "
                        f"{cfg.random_erasing}: pass a probability such as 0.25")
    if not isinstance(cfg.ema_decay, (int, float)) or not 0.0 <= cfg.ema_decay < 1.0:
        raise UserError(f"training option ema_decay must be in [0, 1), got {cfg.ema_decay}: "
                        "pass a decay such as 0.999 (0: off)")
    for key in ("lr", "weight_decay", "momentum", "label_smoothing"):
        v = getattr(cfg, key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 1e30:
            raise UserError(f"training option {key} must be >= 0, got {v!r}: pass a number such as 0.1")
    check_amp(resolve_device(cfg.device), cfg.amp)


TRAIN_CHECKPOINT = "train_checkpoint.pt"


def resolve_epochs(cfg: TrainConfig, images: int, *, world: int = 1) -> TrainConfig:
    """``cfg`` with its epochs set: as given, or on ``images`` training images
    ``budget.train_epochs`` (20, more where a pass is under 75 steps); a raise is logged."""
    if cfg.epochs is not None:
        return cfg
    epochs = train_epochs(images, cfg.batch_size, world=world, max_steps=cfg.max_steps)
    if epochs > TRAIN_EPOCHS:
        per_pass = steps_per_pass(images, cfg.batch_size, world=world)
        log.info("training: %d epochs of %d steps on %d images (at least %d weight updates on "
                 "small data; --train-epochs sets them)", epochs, per_pass, images,
                 TRAIN_EPOCHS * TRAIN_EPOCH_STEPS)
    return replace(cfg, epochs=epochs)


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
        net(torch.zeros(1, *input_shape, device=next(net.parameters()).device))
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
             flip_tta: bool = False, amp: bool = False) -> dict[str, float]:
    """Accuracy and mean cross-entropy; with ``flip_tta`` of ``FlipAverage(net)``.  The net is
    evaluated in eval mode and left in the mode it was found in."""
    was_training = net.training
    net.eval()
    model = FlipAverage(net) if flip_tta else net
    correct, total, loss = 0, 0, 0.0
    try:
        for x, y in batches:
            with autocast(x.device, amp):
                out = model(x).float()
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            total += int(y.numel())
    finally:
        net.train(was_training)
    return {"accuracy": correct / max(total, 1), "loss": loss / max(total, 1)}


def make_optimizer(net: nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD nesterov; weight decay on the weights of more than one dimension only (not on norms
    and biases)."""
    decay, no_decay = [], []
    for _, p in net.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=cfg.lr, momentum=cfg.momentum, nesterov=True)


def train_net(net: nn.Module, data: Dataset, cfg: TrainConfig, *,
              progress: Progress = no_progress,
              on_epoch: Callable[[int, dict[str, float]], None] | None = None,
              checkpoint: str | Path | None = None, resume: bool = False,
              dist: Dist | None = None, flip_tta: bool = False) -> dict[str, float]:
    """Train ``net`` (moved to ``cfg.device``) on data.train, evaluate on data.test; returns
    the final metrics (none without a test split; with ``flip_tta`` also
    ``accuracy_flip_tta``, the test accuracy of ``FlipAverage(net)``).

    With ``checkpoint`` the full state is written there (atomically) at every epoch end and
    every ``cfg.checkpoint_every`` steps; ``resume`` continues from it to the same weights as an
    uninterrupted run.  ``dist`` shards the batches and averages gradients over the ranks
    (only rank 0 writes the checkpoint).  Runs with ``cfg.threads`` intra-op threads (the
    caller's count is restored after).  Seeds nothing: data order and augmentation come from
    generators seeded with ``cfg.seed``, and the caller seeds the process's RNG (weight
    initialisation, dropout) once before it builds the net (``utils.seeding``).
    """
    check_train_config(cfg)
    cfg = resolve_epochs(cfg, len(data.train), world=(dist or Dist()).world)
    with torch_threads(cfg.threads):
        return _train_net(net, data, cfg, progress=progress, on_epoch=on_epoch,
                          path=Path(checkpoint) if checkpoint is not None else None,
                          resume=resume, dist=dist or Dist(), flip_tta=flip_tta)


def _train_net(net: nn.Module, data: Dataset, cfg: TrainConfig, *, progress: Progress,
               on_epoch: Callable[[int, dict[str, float]], None] | None, path: Path | None,
               resume: bool, dist: Dist, flip_tta: bool) -> dict[str, float]:
    device = resolve_device(cfg.device)
    net.to(device)
    if cfg.channels_last:
        net.to(memory_format=torch.channels_last)
    train = Batches(data.train, batch_size=cfg.batch_size, mean=data.mean, std=data.std,
                    augment=cfg.augment, seed=cfg.seed, drop_last=True,
                    channels_last=cfg.channels_last, erase=cfg.random_erasing, rank=dist.rank,
                    world=dist.world, device=device)
    if len(train) == 0:
        raise UserError(f"batch size {cfg.batch_size} is larger than the {len(data.train) // dist.world} "
                        "training images per process: lower the training batch size")
    opt = make_optimizer(net, cfg)
    # the EMA copy averages the weights and the BatchNorm statistics after every step; the
    # trained net ends with its values (the net that is saved, evaluated and timed)
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                        use_buffers=True) if cfg.ema_decay > 0 else None
    steps_per_epoch = len(train) if cfg.max_steps is None else min(len(train), cfg.max_steps)
    loop = Trainer(net, opt, train, lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                   state=LoopState(), label_smoothing=cfg.label_smoothing, device=device,
                   amp=cfg.amp, dist=dist, checkpoint_every=cfg.checkpoint_every,
                   fix="lower the training learning rate (--lr)")

    def save() -> None:
        check_finite(loop.params, "a weight", "lower the training learning rate (--lr)")
        if path is None or not dist.is_main:
            return
        torch_save(path, {"kind": "directnas-train", "model_digest": model_digest(net),
                          "config": asdict(cfg), "net": net.state_dict(), "opt": opt.state_dict(),
                          "state": asdict(loop.state), "epoch_gen": loop.epoch_gen,
                          "rng": rng_state(), "ema": None if ema is None else ema.state_dict()})

    if resume and path is not None and path.exists():
        _resume(path, net, opt, ema, loop)
    after_step = (lambda i, sums: ema.update_parameters(net)) if ema is not None else None
    net.train()
    while loop.state.epoch < cfg.epochs:
        epoch = loop.state.epoch
        sums = loop.run_epoch(desc=f"train {epoch + 1}/{cfg.epochs}", progress=progress,
                              after_step=after_step, save=save)
        row = {"train_loss": sums["loss"] / max(sums["n"], 1)}
        dist.broadcast_tensors(net.buffers())  # BatchNorm statistics: rank 0's, as DDP does
        if ema is not None:
            dist.broadcast_tensors(ema.module.buffers())
        save()
        if on_epoch is not None:
            on_epoch(epoch, row)
    if ema is not None:
        net.load_state_dict(ema.module.state_dict())
    return _test_metrics(net, data, cfg, device, flip_tta)


def _resume(path: Path, net: nn.Module, opt: torch.optim.Optimizer, ema: AveragedModel | None,
            loop: Trainer) -> None:
    """Put the training checkpoint at ``path`` back into the net, optimizer, EMA and loop."""
    ck = load_train_checkpoint(path, net)
    net.load_state_dict(ck["net"])
    opt.load_state_dict(ck["opt"])
    if (ema is None) != (ck.get("ema") is None):
        raise UserError(f"{path} was written {'without' if ema else 'with'} --train-ema (ema_decay): "
                        "resume with the same options, or train in a new --out")
    if ema is not None:
        ema.load_state_dict(ck["ema"])
    loop.state = LoopState(**ck["state"])
    loop.epoch_gen = ck["epoch_gen"]
    set_rng_state(ck["rng"])
    remove_stale_temps(path.parent)
    log.info("resumed training at epoch %d, step %d", loop.state.epoch, loop.state.step)


def _test_metrics(net: nn.Module, data: Dataset, cfg: TrainConfig, device: torch.device,
                  flip_tta: bool) -> dict[str, float]:
    """Accuracy and loss on the test split (empty without one: the net is left in eval mode)."""
    if len(data.test) == 0:
        net.eval()
        return {}
    test = Batches(data.test, batch_size=512, mean=data.mean, std=data.std, shuffle=False,
                   channels_last=cfg.channels_last, device=device)
    result = evaluate(net, test, amp=cfg.amp)
    if flip_tta:
        result["accuracy_flip_tta"] = evaluate(net, test, flip_tta=True, amp=cfg.amp)["accuracy"]
    return result


def load_train_checkpoint(path: Path, net: nn.Module) -> dict[str, Any]:
    ck = torch_load(path)
    if not isinstance(ck, dict) or ck.get("kind") != "directnas-train":
        raise UserError(f"{path} is not a directnas training checkpoint: move it away or use another --out")
    if ck.get("model_digest") != model_digest(net):
        raise UserError(f"checkpoint {path} was written for another model: train this one in a new --out")
    return ck

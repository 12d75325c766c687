"""The search loop: warm-up, alternating weight/alpha steps, checkpoints, derive().

Schedule (ProxylessNAS, scaled to the task): ``warmup_epochs`` of weight steps on uniformly
sampled paths, then ``epochs`` in which every train batch is one weight step (paths sampled from
p) and every ``arch_every``-th batch also one alpha step on a validation batch.  Weights: SGD
nesterov + cosine LR; alpha: Adam(lr, betas=(0, 0.999), eps=1e-8, no weight decay).

Checkpoints (``search_checkpoint.pt``, atomic) hold everything the next step depends on: weights,
alpha, both optimizers, the loss's multiplier, step counters, the python/numpy/torch RNGs, the
gate and validation generators, the batch generator's state at the epoch start and the index
of the next batch.  ``resume()`` + ``run()`` therefore reach the same alpha, bit for bit, as an
uninterrupted run.  Under torchrun (``dist``) every rank draws the same gates, gets its own
shard of the batches, and averages weight and alpha gradients; only rank 0 writes.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from directnas.data.datasets import Batches, Dataset, split_train_valid
from directnas.utils.distributed import Dist
from directnas.errors import UserError
from directnas.utils.fileio import remove_stale_temps, torch_load, torch_save, write_json
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import fastest_ms
from directnas.nas.diagnostics import decision
from directnas.nas.gates import make_strategy
from directnas.nas.loss import HardwareLoss
from directnas.nas.superkernel import SHARING
from directnas.nas.supernet import Supernet

WEIGHT_PATHS = ("probs", "uniform")  # SearchConfig.weight_paths
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from directnas.utils.device import check_amp, resolve_device
from directnas.training.train_net import evaluate
from directnas.training.trainer import LoopState, Progress, Trainer, check_finite, no_progress, rng_state, set_rng_state
from directnas.utils.seeding import seeded
from directnas.utils.threads import torch_threads, usable_cores

log = logging.getLogger(__name__)
CHECKPOINT = "search_checkpoint.pt"
WARMUP_CHECKPOINT = "warmup_checkpoint.pt"
# the whole search, shared by the targets when alpha does not see the target (loss "none")
SHARED_SEARCH = "search_shared.pt"
# options that do not change the warm-up (it trains weights on uniform paths; alpha waits)
TARGET_OPTIONS = frozenset({"target_latency_ms", "lam", "beta", "loss", "arch_lr", "arch_every",
                            "arch_start_epoch", "derive", "derive_window", "rerank_candidates",
                            "rerank_batches", "unlearned_derive", "history_every",
                            "checkpoint_every", "device", "threads"})
# options read only when the net is derived: with loss "none" the whole search is shared
DERIVE_OPTIONS = frozenset({"target_latency_ms", "lam", "beta", "derive", "derive_window",
                            "rerank_candidates", "rerank_batches", "unlearned_derive",
                            "checkpoint_every", "device", "threads"})
M = TypeVar("M", bound=Callable[..., Any])


@dataclass
class SearchConfig:
    # default budget: <= 15 min on 2 cores (1 + 2 epochs of 330 batches; benchmarks/search_cost.py
    # gives ~0.43 s per weight step and ~0.39 s per alpha step at batch 128 on this CPU)
    warmup_epochs: int = 1
    epochs: int = 2
    batch_size: int = 128
    valid_size: int | None = None  # default: 10 % of the training set, at most 5000
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    # alpha: 0.06 with the all-path estimator below (at 0.02 with binary-two, 330 alpha steps
    # left every layer's largest probability near 0.3; docs/search-strategies.md)
    arch_lr: float = 0.06
    arch_every: int = 2
    arch_start_epoch: int = 0  # main epoch from which alpha steps run (official: 1)
    # every path's gate gradient, one path in the graph: after the warm-up, binary-two's CE
    # gradient is not above its noise in 9 of 11 layers, this one's is in 8 (benchmarks/search_signal.py)
    strategy: str = "binary-full-v2"
    # MBConv candidates of a layer that share one set of weights (search/superkernel.py):
    # "none", "kernel" (nested kernels per expansion ratio) or "full" (kernels and channels)
    weight_sharing: str = "none"
    # paths of the weight steps after the warm-up: "probs" (ProxylessNAS: drawn from p) or
    # "uniform" (every path trained equally, as in the warm-up; FairNAS / SPOS)
    weight_paths: str = "probs"
    # alpha's objective (search/loss.py): "none", cross-entropy alone, leaves the latency to the
    # constrained derive, so alpha does not depend on the target and one search serves every
    # target; on NAS-Bench-Macro its nets sit at the 96th / 98th / 90th percentile of their
    # window at p25 / p50 / p75, the hinge's at the 88th / 98th / 77th (BENCHMARKS.md)
    loss: str = "none"
    target_latency_ms: float | None = None
    lam: float = 0.1
    beta: float = 0.3
    seed: int = 0
    threads: int = field(default_factory=usable_cores)  # intra-op threads (the usable cores)
    max_steps: int | None = 330  # train batches per epoch (None: the whole training split)
    history_every: int = 10  # record probabilities every N alpha steps
    derive: str = "constrained"  # or "argmax" or "rerank" (search/derive.py)
    derive_window: float = 0.95  # constrained derive: predicted latency in [window*T, T]
    # rerank derive: the constrained net and nets drawn from p inside [window*T, T], each scored
    # by its validation accuracy inside the supernet (BN re-estimated); the best is kept
    rerank_candidates: int = 24
    rerank_batches: int = 10  # calibration and validation batches per candidate
    # the net kept when the supernet has not learned (its accuracy near chance, ``learned``):
    # "macs", the net with the most MACs in [derive_window * T, T] (needs no supernet; on
    # NAS-Bench-Macro its window percentile is 77-98), or "keep" the search's choice anyway
    unlearned_derive: str = "macs"
    channels_last: bool = True  # 1.5-2x faster training steps on CPU (benchmarks/search_cost.py)
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0: epoch ends only)
    device: str = "auto"  # cpu, cuda, cuda:N or auto (CUDA when there is one)
    amp: bool = False  # bfloat16 autocast of the weight steps (CUDA only)
    eval_batches: int = 10  # per epoch: the argmax path's validation accuracy on N batches (0: off)


@dataclass
class SearchState(LoopState):
    """The loop's state (epochs counted with the warm-up) plus the alpha side's."""

    alpha_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, float]] = field(default_factory=list)


_INT_OPTIONS = ("warmup_epochs", "epochs", "batch_size", "arch_every", "arch_start_epoch",
                "threads", "history_every", "checkpoint_every", "max_steps", "eval_batches",
                "rerank_candidates", "rerank_batches")
DERIVES = ("constrained", "argmax", "rerank", "macs")
UNLEARNED_DERIVES = ("macs", "keep")


def check_config(cfg: SearchConfig) -> None:
    """One-line errors for option values no search can run with."""
    for name in _INT_OPTIONS:
        v = getattr(cfg, name)
        low = 1 if name in ("batch_size", "arch_every", "threads", "history_every", "max_steps",
                            "rerank_candidates", "rerank_batches") else 0
        if v is None and name == "max_steps":
            continue
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise UserError(f"search option {name} must be an integer >= {low}, got {v!r}: fix it "
                            "in --config or on the command line")
    for name in ("lr", "arch_lr", "momentum", "weight_decay", "lam"):
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v < 1e30:
            raise UserError(f"search option {name} must be a number in [0, 1e30), got {v!r}")
    if cfg.derive not in DERIVES:
        raise UserError(f"search option derive must be one of {', '.join(DERIVES)}, got {cfg.derive!r}")
    if cfg.unlearned_derive not in UNLEARNED_DERIVES:
        raise UserError(f"search option unlearned_derive must be one of {', '.join(UNLEARNED_DERIVES)}, "
                        f"got {cfg.unlearned_derive!r}")
    if cfg.weight_paths not in WEIGHT_PATHS:
        raise UserError(f"search option weight_paths must be one of {', '.join(WEIGHT_PATHS)}, "
                        f"got {cfg.weight_paths!r}")
    if cfg.weight_sharing not in SHARING:
        raise UserError(f"search option weight_sharing must be one of {', '.join(SHARING)}, "
                        f"got {cfg.weight_sharing!r}")
    if cfg.warmup_epochs + cfg.epochs == 0:
        raise UserError("warmup_epochs + epochs is 0: give --epochs 1 or more")
    check_loss_derive(cfg, has_target=cfg.target_latency_ms is not None)
    check_amp(resolve_device(cfg.device), cfg.amp)


def check_loss_derive(cfg: SearchConfig, *, has_target: bool) -> None:
    """With a target, a search whose alpha ignores it (loss none) needs a derive that reads it."""
    if has_target and cfg.loss == "none" and cfg.derive == "argmax":
        raise UserError("search options loss none and derive argmax ignore the target latency: "
                        "use --derive constrained (the default) or rerank, or a latency loss "
                        "(--loss hinge)")
    if has_target and cfg.loss == "none" and cfg.strategy == "reinforce-live":
        raise UserError("strategy reinforce-live times every sampled net for a reward that loss "
                        "none leaves out: give a latency loss (--loss hinge) or --strategy "
                        "reinforce")


def valid_split_size(cfg: SearchConfig, n_train: int) -> int:
    """The training images the search holds out to drive alpha (default 10 %, at most 5000)."""
    return cfg.valid_size or min(5000, max(1, n_train // 10))


def check_data_fits(space: SearchSpace, data: Dataset) -> None:
    c, h, w = data.input_shape
    if (c, h) != (space.input_channels, space.input_size) or h != w:
        raise UserError(f"dataset images are {c}x{h}x{w} but space {space.name!r} expects "
                        f"{space.input_channels}x{space.input_size}x{space.input_size}: "
                        "pick a matching --space")
    if data.train.num_classes != space.num_classes:
        raise UserError(f"dataset has {data.train.num_classes} classes, space {space.name!r} "
                        f"{space.num_classes}: set num_classes in the space YAML")


def _with_threads(method: M) -> M:
    """The method run with the search's ``cfg.threads`` intra-op threads (restored after)."""

    @functools.wraps(method)
    def wrapper(self: "Searcher", *args: Any, **kwargs: Any) -> Any:
        with torch_threads(self.cfg.threads):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _strategy_state(strategy: object) -> dict[str, Any]:
    """A strategy's scalar attributes (moving baselines, temperatures) for the checkpoint."""
    return {k: v for k, v in vars(strategy).items()
            if isinstance(v, (bool, int, float, str)) or v is None}


class Searcher:
    """Owns the supernet, optimizers and state of one search run in ``out``."""

    def __init__(self, space: SearchSpace, data: Dataset, table: LatencyTable | None,
                 cfg: SearchConfig, out: str | Path, *, dist: Dist | None = None,
                 warmup_cache: str | Path | None = None) -> None:
        """``warmup_cache``: a file holding the supernet after the warm-up.  The warm-up does not
        depend on the target, so searches of several targets on the same data and options
        share it: the first writes it when its warm-up ends, the others start from it."""
        check_config(cfg)
        self.warmup_cache = Path(warmup_cache) if warmup_cache is not None else None
        self.warmup_reused_s: float | None = None
        self.search_reused_s: float | None = None  # the whole search (shared, loss none)
        self.space, self.data, self.table, self.cfg = space, data, table, cfg
        self.out = Path(out)
        self.dist = dist = dist or Dist()
        check_data_fits(space, data)
        # the supernet's initial weights come from the process's RNG, seeded by the caller
        # (``search`` seeds once at its entry); batches, gates and validation draws come from
        # generators seeded with cfg.seed
        self.device = resolve_device(cfg.device)
        self.net = Supernet(space, share_weights=cfg.weight_sharing).to(self.device)
        if cfg.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if table is not None:
            fixed, per_layer = table.space_latencies(space)
            self.net.set_latency(fixed, per_layer)
            self.fastest_ms = fastest_ms(space, table)
            t = cfg.target_latency_ms
            if t is not None and t < self.fastest_ms:
                raise UserError(f"target latency {t:g} ms is below the fastest net of space "
                                f"{space.name!r} ({self.fastest_ms:.3f} ms on this table): raise --target-latency")
        elif cfg.target_latency_ms is not None:
            raise UserError("a target latency needs a latency table: profile the device first")
        self.strategy = make_strategy(cfg.strategy)
        self.objective = HardwareLoss(cfg.loss, cfg.target_latency_ms, lam=cfg.lam, beta=cfg.beta,
                                      label_smoothing=0.0)
        valid_size = valid_split_size(cfg, len(data.train))
        train, valid = split_train_valid(data.train, valid_size=valid_size, seed=cfg.seed)
        self.train = Batches(train, batch_size=cfg.batch_size, mean=data.mean, std=data.std,
                             augment=True, seed=cfg.seed, drop_last=True,
                             channels_last=cfg.channels_last, rank=dist.rank, world=dist.world,
                             device=self.device)
        if len(self.train) == 0:
            raise UserError(f"batch size {cfg.batch_size} is larger than the {len(train) // dist.world} "
                            "training images per process: lower --batch-size")
        self.valid = Batches(valid, batch_size=cfg.batch_size, mean=data.mean, std=data.std,
                             shuffle=False, channels_last=cfg.channels_last, device=self.device)
        self.valid_data = valid
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)  # gate sampling
        self.valid_gen = torch.Generator().manual_seed(cfg.seed + 2)  # alpha-step batches
        wparams = self.net.weight_parameters()
        self.w_opt = torch.optim.SGD(wparams, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                     weight_decay=cfg.weight_decay)
        self.a_opt = torch.optim.Adam(self.net.arch_parameters(), lr=cfg.arch_lr,
                                      betas=(0.0, 0.999), eps=1e-8, weight_decay=0.0)
        self.wparams = wparams
        if dist.active:  # strategies call a_opt.step() themselves: average alpha grads first
            self.a_opt.register_step_pre_hook(
                lambda opt, a, kw: dist.all_reduce_grads(self.net.arch_parameters()))
        self.state = SearchState()
        self.earlier_s = 0.0
        self.loop = Trainer(self.net, self.w_opt, self.train, lr=cfg.lr,
                            epochs=cfg.warmup_epochs + cfg.epochs,
                            steps_per_epoch=self.steps_per_epoch, state=self.state,
                            label_smoothing=cfg.label_smoothing, device=self.device, amp=cfg.amp,
                            dist=dist, checkpoint_every=cfg.checkpoint_every, fix="lower --lr")

    # ---- checkpoints -------------------------------------------------------------------------
    def checkpoint_dict(self) -> dict[str, Any]:
        return {
            "kind": "directnas-search", "space_fingerprint": self.space.fingerprint(),
            "table_digest": self.table.digest() if self.table else None,
            "table_meta": dict(self.table.meta) if self.table else None,
            "config": asdict(self.cfg), "net": self.net.state_dict(),
            "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
            "objective": self.objective.state_dict(), "state": asdict(self.state),
            "strategy": _strategy_state(self.strategy),
            "gen": self.gen.get_state(), "valid_gen": self.valid_gen.get_state(),
            "epoch_gen": self.loop.epoch_gen, "rng": rng_state(),
        }

    def save_checkpoint(self) -> Path:
        """Every rank checks (finite values; same alpha and gates on all ranks); rank 0 writes."""
        path = self.out / CHECKPOINT
        check_finite(self.net.weight_parameters(), "a supernet weight", "lower --lr")
        check_finite(self.net.arch_parameters(), "alpha", "lower --arch-lr")
        self.dist.check_same(self.net.arch_parameters() + [self.gen.get_state()],
                             "alpha or the gate generator")
        self.dist.broadcast_tensors(self.net.buffers())  # BatchNorm statistics: rank 0's
        if self.dist.is_main:
            torch_save(path, self.checkpoint_dict())
        return path

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The run folder's checkpoint, checked against this run (None if there is none)."""
        path = self.out / CHECKPOINT
        if not path.exists():
            return None
        ck = torch_load(path, what="search checkpoint")
        if not isinstance(ck, dict) or ck.get("kind") != "directnas-search":
            raise UserError(f"{path} is not a directnas search checkpoint: move it away or use another --out")
        if ck.get("space_fingerprint") != self.space.fingerprint():
            raise UserError(f"checkpoint {path} belongs to another search space: pass the space "
                            "it was made with or use a new --out")
        if ck.get("table_digest") != (self.table.digest() if self.table else None):
            was = (ck.get("table_meta") or {}).get("device", "another device")
            raise UserError(f"checkpoint {path} was made with another latency table ({was}): pass "
                            f"the run's own table ({self.out / 'latency.json'}) or use a new --out")
        changed = sorted(k for k, v in ck.get("config", {}).items()
                         if k not in ("threads", "device") and getattr(self.cfg, k, v) != v)
        if changed:
            log.warning("resuming with changed option(s) %s: the result will differ from an "
                        "uninterrupted run", ", ".join(changed))
        return ck

    def resume(self, ck: dict[str, Any] | None = None) -> bool:
        """Load the run folder's checkpoint (or ``ck`` from ``load_checkpoint``)."""
        ck = ck if ck is not None else self.load_checkpoint()
        if ck is None:
            return False
        path = self.out / CHECKPOINT
        try:
            self.net.load_state_dict(ck["net"])
            self.w_opt.load_state_dict(ck["w_opt"])
            self.a_opt.load_state_dict(ck["a_opt"])
            self.objective.load_state_dict(ck["objective"])
            self.state = self.loop.state = SearchState(**ck["state"])
            # the loop time of the epochs done before this process (search_wall_s counts them)
            self.earlier_s = sum(float(r.get("epoch_s", 0.0)) for r in self.state.log)
            for k, v in ck.get("strategy", {}).items():
                setattr(self.strategy, k, v)
            self.gen.set_state(ck["gen"])
            self.valid_gen.set_state(ck["valid_gen"])
            self.loop.epoch_gen = ck["epoch_gen"]
            set_rng_state(ck["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise UserError(f"checkpoint {path} does not fit this search ({type(e).__name__}: "
                            f"{str(e).splitlines()[0][:120]}): move it away or use a new --out") from None
        if self.dist.is_main:
            remove_stale_temps(self.out)
        return True

    # ---- the warm-up shared by the targets -----------------------------------------------------
    def warmup_key(self) -> dict[str, Any]:
        """What the warm-up depends on: the space, the data and every option but the target's."""
        import hashlib

        labels = self.data.train.labels.numpy().tobytes()
        return {"space_fingerprint": self.space.fingerprint(),
                "data": hashlib.sha256(labels).hexdigest()[:16], "train_images": len(self.data.train),
                "config": {k: v for k, v in asdict(self.cfg).items() if k not in TARGET_OPTIONS}}

    def search_key(self) -> dict[str, Any] | None:
        """What the whole search depends on when alpha does not see the target (loss none):
        the warm-up's key and the alpha options; None when alpha reads the target."""
        if self.objective.form != "none":
            return None
        key = self.warmup_key()
        key["config"] = {k: v for k, v in asdict(self.cfg).items() if k not in DERIVE_OPTIONS}
        return key

    @property
    def search_cache(self) -> Path | None:
        return self.warmup_cache.with_name(SHARED_SEARCH) if self.warmup_cache else None

    def _reuse(self, path: Path | None, key: dict[str, Any] | None, what: str) -> bool:
        """Start from a shared checkpoint (``what``: warm-up or search) of the same key, before
        any step; the rows it carries are priced again on this search's table."""
        if path is None or key is None or not path.exists() or self.state.epoch \
                or self.state.step:
            return False
        ck = torch_load(path, what=f"shared {what} checkpoint")
        field = "warmup_key" if what == "warm-up" else "search_key"
        if not isinstance(ck, dict) or ck.get(field) != key:
            log.info("%s %s was made with other options or data: not reused", what, path)
            return False
        self.net.load_state_dict(ck["net"])
        self.w_opt.load_state_dict(ck["w_opt"])
        if what == "search":
            self.a_opt.load_state_dict(ck["a_opt"])
            self.objective.load_state_dict(ck["objective"])
            for k, v in ck.get("strategy", {}).items():
                setattr(self.strategy, k, v)
        self.state = self.loop.state = SearchState(**ck["state"])
        self.gen.set_state(ck["gen"])
        self.valid_gen.set_state(ck["valid_gen"])
        self.loop.epoch_gen = ck["epoch_gen"]
        set_rng_state(ck["rng"])
        if self.table is not None:  # the rows were priced on another target's table
            self._reprice()
        saved = sum(float(r.get("epoch_s", 0.0)) for r in self.state.log)
        self.warmup_reused_s = sum(float(r.get("epoch_s", 0.0)) for r in self.state.log
                                   if r.get("warmup"))
        if what == "search":
            self.search_reused_s = saved
        log.info("starting from the shared %s %s (%d epochs, %.0f s saved)", what, path,
                 len(self.state.log), saved)
        return True

    def _reprice(self) -> None:
        """Expected and argmax latencies of the kept rows on this table, from the probabilities
        recorded with them (a log row's are those of the history entry recorded at its end)."""
        from directnas.latency.predictor import predict_arch_ms

        fixed, per_layer = self.table.space_latencies(self.space)  # type: ignore[union-attr]
        names = [m.names for m in self.net.mixed]

        def price(probs: list[list[float]]) -> tuple[float, float]:
            expected = fixed + sum(sum(p * ms for p, ms in zip(ps, lat))
                                   for ps, lat in zip(probs, per_layer))
            ops = [n[max(range(len(ps)), key=ps.__getitem__)] for n, ps in zip(names, probs)]
            return float(expected), predict_arch_ms(Arch(self.space, ops), self.table)

        at_epoch: dict[int, list[list[float]]] = {}
        for row in self.state.history:
            at_epoch.setdefault(int(row["epoch"]), row["probs"])
            if "expected_latency_ms" in row:
                row["expected_latency_ms"] = price(row["probs"])[0]
        for row in self.state.log:
            probs = at_epoch.get(int(row["epoch"]))
            if probs is not None and "expected_latency_ms" in row:
                row["expected_latency_ms"], row["derived_latency_ms"] = price(probs)

    def _share(self, path: Path | None, key: dict[str, Any] | None, done: bool,
               field: str = "search_key") -> None:
        if path is None or key is None or path.exists() or not done:
            return
        if self.dist.is_main:
            torch_save(path, {**self.checkpoint_dict(), field: key})

    def _reuse_warmup(self) -> bool:
        if not self.cfg.warmup_epochs:
            return False
        return self._reuse(self.warmup_cache, self.warmup_key(), "warm-up")

    def _share_warmup(self) -> None:
        self._share(self.warmup_cache, self.warmup_key(),
                    self.state.epoch == self.cfg.warmup_epochs, field="warmup_key")

    # ---- the loop ----------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        n = len(self.train)
        return n if self.cfg.max_steps is None else min(n, self.cfg.max_steps)

    def _valid_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every rank draws the same global batch of size batch_size * world and takes its part."""
        bs, d = self.cfg.batch_size, self.dist
        idx = torch.randint(len(self.valid_data), (bs * d.world,), generator=self.valid_gen)
        idx = idx[d.rank * bs:(d.rank + 1) * bs]
        return self.valid.transform(self.valid_data.take(idx)), self.valid.labels(idx)

    def _record(self) -> None:
        probs = self.net.probs()
        d = decision(probs)
        entry: dict[str, Any] = {"epoch": self.state.epoch, "step": self.state.step,
                                 "alpha_steps": self.state.alpha_steps, "probs": probs,
                                 "max_prob": d["max_prob"], "entropy": d["entropy"],
                                 "mean_max_prob": d["mean_max_prob"]}
        if self.table is not None:
            entry["expected_latency_ms"] = float(self.net.expected_latency().detach())
        self.state.history.append(entry)

    @_with_threads
    def run(self, progress: Progress = no_progress,
            on_epoch: Callable[[dict[str, float]], None] | None = None,
            on_step: Callable[[int], None] | None = None) -> Arch:
        """Run (or continue) the schedule; ``on_step(step)`` after every batch."""
        cfg = self.cfg
        total_epochs = cfg.warmup_epochs + cfg.epochs
        uniform_paths = cfg.weight_paths == "uniform"
        if not self._reuse(self.search_cache, self.search_key(), "search"):
            self._reuse_warmup()
        if not self.state.history:
            self._record()
        self.net.train()
        while self.state.epoch < total_epochs:
            epoch = self.state.epoch
            warmup = epoch < cfg.warmup_epochs
            alpha_on = not warmup and epoch - cfg.warmup_epochs >= cfg.arch_start_epoch
            desc = f"warm-up {epoch + 1}/{cfg.warmup_epochs}" if warmup else \
                f"search {epoch - cfg.warmup_epochs + 1}/{cfg.epochs}"
            if self.state.log:  # has it decided yet? (search/diagnostics.py)
                last = self.state.log[-1]
                acc = last.get("supernet_valid_accuracy")
                desc += f" [p_max {last['mean_max_prob']:.2f}" + \
                    (f", supernet acc {100 * acc:.1f}%]" if acc is not None else "]")
            hook = getattr(self.strategy, "on_epoch", None)
            if hook is not None:  # e.g. a temperature schedule (a pure function of the epoch)
                hook(epoch, total_epochs)
            t0 = time.perf_counter()

            def sample_paths(i: int) -> None:
                self.strategy.prepare_weight_step(self.net, self.gen,
                                                  warmup=warmup or uniform_paths)

            def alpha_step(i: int, sums: dict[str, float]) -> None:
                if not (alpha_on and (i + 1) % cfg.arch_every == 0):
                    return
                vx, vy = self._valid_batch()
                info = self.strategy.alpha_step(self.net, vx, vy, objective=self.objective,
                                                optimizer=self.a_opt, gen=self.gen)
                check_finite(self.net.arch_parameters(), "alpha", "lower --arch-lr")
                sums["alpha_loss"] = sums.get("alpha_loss", 0.0) + info["loss"]
                sums["na"] = sums.get("na", 0) + 1
                self.state.alpha_steps += 1
                if self.state.alpha_steps % cfg.history_every == 0:
                    self._record()

            sums = self.loop.run_epoch(desc=desc, progress=progress, before_step=sample_paths,
                                       after_step=alpha_step, save=self.save_checkpoint,
                                       on_step=on_step)
            row = {"epoch": self.state.epoch, "warmup": float(warmup),
                   "train_loss": sums["loss"] / max(sums["n"], 1),
                   "alpha_loss": sums.get("alpha_loss", 0.0) / max(sums.get("na", 0), 1),
                   "epoch_s": time.perf_counter() - t0}
            if self.table is not None:
                row["expected_latency_ms"] = float(self.net.expected_latency().detach())
                row["derived_latency_ms"] = self.derived_latency_ms()
            d = decision(self.net.probs())
            row["mean_max_prob"] = d["mean_max_prob"]
            row["mean_entropy"] = d["mean_entropy"]
            if cfg.eval_batches:  # the argmax path inside the supernet, BN re-estimated
                row["supernet_valid_accuracy"] = self.supernet_accuracy(
                    max_batches=cfg.eval_batches, calib_batches=cfg.eval_batches)
                self.net.train()
            self.state.log.append(row)
            self._record()
            self.save_checkpoint()
            self._share_warmup()
            if on_epoch is not None:
                on_epoch(row)
        self._share(self.search_cache, self.search_key(), self.state.epoch == total_epochs)
        if self.search_reused_s is not None:  # every rank (save_checkpoint is collective):
            self.save_checkpoint()  # this target's folder resumes (and derives) from it
        self.dist.broadcast_tensors(self.net.buffers())
        return self.derive()

    def derived_latency_ms(self) -> float:
        from directnas.latency.predictor import predict_arch_ms

        assert self.table is not None
        return predict_arch_ms(self.net.derive(), self.table)

    def derive(self) -> Arch:
        """The kept net (``cfg.derive``); with a target, also whether the supernet has learned
        (``learned``), and the ``macs`` net instead when it has not (``cfg.unlearned_derive``)."""
        arch = self.net.derive()
        meta: dict[str, Any] = {"strategy": self.cfg.strategy, "seed": self.cfg.seed,
                                "target_latency_ms": self.cfg.target_latency_ms,
                                "derive": "argmax", "probs": self.net.probs()}
        if self.table is not None:
            meta["argmax_arch"] = arch.ops
            meta["argmax_predicted_latency_ms"] = self.derived_latency_ms()
            t = self.cfg.target_latency_ms
            if self.cfg.derive in ("constrained", "rerank") and t is not None:
                from directnas.nas.derive import derive_constrained

                fixed, per_layer = self.table.space_latencies(self.space)
                idx = derive_constrained(self.net.probs(), per_layer, fixed, t,
                                         window=self.cfg.derive_window)
                arch = Arch(self.space, [m.names[i] for m, i in zip(self.net.mixed, idx)])
                meta["derive"] = "constrained"
            if self.cfg.derive == "rerank" and t is not None:
                arch, meta["rerank"] = self._rerank(arch, t)
                meta["derive"] = "rerank"
            if t is not None:
                if self.cfg.derive == "macs":
                    arch, meta["derive"] = self.macs_arch(t), "macs"
                else:
                    acc = self.supernet_accuracy(arch)
                    meta["search_choice"] = {"ops": list(arch.ops), "supernet_accuracy": acc}
                    meta.update(self.learned(acc, fallback=self.cfg.unlearned_derive == "macs"))
                    if not meta["supernet_learned"] and self.cfg.unlearned_derive == "macs":
                        arch, meta["derive"] = self.macs_arch(t), "macs (supernet not learned)"
            from directnas.latency.predictor import predict_arch_ms

            meta["predicted_latency_ms"] = predict_arch_ms(arch, self.table)
            meta["latency_backend"] = self.table.meta.get("backend")
        arch.meta = meta
        return arch

    def macs_arch(self, target_ms: float) -> Arch:
        """The net with the most MACs predicted in [derive_window * T, T] (nas/derive.py)."""
        from directnas.nas.derive import derive_macs
        from directnas.space.macs import layer_mmacs

        assert self.table is not None
        fixed, per_layer = self.table.space_latencies(self.space)
        idx = derive_macs(layer_mmacs(self.space.layers), per_layer, fixed, target_ms,
                          window=self.cfg.derive_window)
        return Arch(self.space, [m.names[i] for m, i in zip(self.net.mixed, idx)])

    def rerank_candidates(self, first: Arch, target_ms: float) -> list[Arch]:
        """``first`` and up to ``rerank_candidates - 1`` more distinct nets drawn from the
        search's probabilities restricted to the window [derive_window * T, T]."""
        from directnas.latency.sampling import ArchSampler

        assert self.table is not None
        out, seen = [first], {tuple(first.ops)}
        try:
            sampler = ArchSampler(self.space, self.table, target_ms=target_ms, tolerance=None,
                                  seed=self.cfg.seed + 4, weights=self.net.probs(),
                                  low_ms=self.cfg.derive_window * target_ms)
        except UserError:  # nothing predicted in the window: the constrained net alone
            return out
        for _ in range(20 * self.cfg.rerank_candidates):
            if len(out) >= self.cfg.rerank_candidates:
                break
            try:
                arch = sampler.sample(tries=50)
            except UserError:
                break
            if tuple(arch.ops) not in seen:
                seen.add(tuple(arch.ops))
                out.append(arch)
        return out

    def _rerank(self, first: Arch, target_ms: float) -> tuple[Arch, list[dict[str, Any]]]:
        """The candidate with the best validation accuracy inside the supernet (ties: the
        earlier, so the constrained net wins a tie)."""
        from directnas.latency.predictor import predict_arch_ms

        assert self.table is not None
        rows = []
        cands = self.rerank_candidates(first, target_ms)
        for arch in cands:
            acc = self.supernet_accuracy(arch, max_batches=self.cfg.rerank_batches,
                                         calib_batches=self.cfg.rerank_batches)
            rows.append({"ops": list(arch.ops), "predicted_latency_ms": predict_arch_ms(arch, self.table),
                         "supernet_accuracy": acc})
        best = max(range(len(cands)), key=lambda i: (rows[i]["supernet_accuracy"], -i))
        log.info("rerank: %d candidates in [%.3f, %.3f] ms, supernet accuracy %.1f-%.1f %%, kept "
                 "candidate %d", len(cands), self.cfg.derive_window * target_ms, target_ms,
                 100 * min(r["supernet_accuracy"] for r in rows),
                 100 * max(r["supernet_accuracy"] for r in rows), best)
        return Arch(self.space, list(cands[best].ops)), rows

    @_with_threads
    def supernet_accuracy(self, arch: Arch | None = None, max_batches: int = 20,
                          calib_batches: int = 20) -> float:
        """Validation accuracy of ``arch`` (default: the argmax path) inside the supernet, weights
        inherited.  The BatchNorm running statistics of a supernet average over every sampled
        path, so they are first re-estimated on ``calib_batches`` training batches of this path
        (the usual one-shot NAS recalibration) and restored afterwards."""
        for i, m in enumerate(self.net.mixed):
            idx = (m.names.index(arch.ops[i]) if arch is not None
                   else int(torch.argmax(m.alpha.detach())))
            m.set_active([idx])
        bns = [b for b in self.net.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
        saved = [(b.momentum, {k: v.clone() for k, v in b.state_dict().items()}) for b in bns]
        # the same calibration batches every call, and the training stream left as it was
        gen_state = self.train.generator.get_state()
        self.train.generator.manual_seed(self.cfg.seed + 3)
        try:
            with seeded(self.cfg.seed + 3):
                for b in bns:
                    b.reset_running_stats()
                    b.momentum = None  # cumulative average over the calibration batches
                self.net.train()
                with torch.no_grad():
                    for i, (x, _) in enumerate(self.train):
                        if i >= calib_batches:
                            break
                        self.net(x)
                batches = (b for i, b in enumerate(self.valid) if i < max_batches)
                return evaluate(self.net, batches)["accuracy"]
        finally:
            for b, (momentum, state) in zip(bns, saved):
                b.momentum = momentum
                b.load_state_dict(state)
            self.train.generator.set_state(gen_state)

    def learned(self, accuracy: float, *, fallback: bool = False) -> dict[str, Any]:
        """Has the supernet learned?  Its validation accuracy against chance (the validation
        split's largest class share): below chance + 20 % of the way to 100 %, its choices are
        noise, and the search says so (and, with ``fallback``, that it keeps the MACs net)."""
        counts = torch.bincount(self.valid_data.labels.long())
        chance = float(counts.max()) / max(int(counts.sum()), 1)
        ok = accuracy >= chance + 0.2 * (1.0 - chance)
        if not ok:
            then = ("kept the net with the most MACs in the latency window instead (search option "
                    "unlearned_derive: keep to keep the search's choice)") if fallback else \
                "its choices are close to a random draw"
            log.warning("the supernet scores %.1f %% on the validation split, near chance (%.1f %%): "
                        "%s; give the search more steps (--warmup-epochs / --epochs) or more images",
                        100 * accuracy, 100 * chance, then)
        return {"chance_accuracy": chance, "supernet_learned": ok}

    def _accuracy_of(self, arch: Arch) -> float:
        """``supernet_accuracy(arch)``, reusing the one ``derive`` measured on the same net."""
        seen = arch.meta.get("search_choice") if isinstance(arch.meta, dict) else None
        if seen and list(seen["ops"]) == list(arch.ops):
            return float(seen["supernet_accuracy"])
        return self.supernet_accuracy(arch)

    @_with_threads
    def write_outputs(self, arch: Arch, *, wall_s: float) -> dict[str, Any]:
        arch.save(self.out / "arch.json")
        summary = {"config": asdict(self.cfg), "space": self.space.name,
                   "search_wall_s": wall_s + self.earlier_s, "resumed": self.earlier_s > 0,
                   "warmup_reused_s": self.warmup_reused_s,
                   "search_reused_s": self.search_reused_s,
                   "steps": self.state.step,
                   "alpha_steps": self.state.alpha_steps, "epochs": self.state.log,
                   "history": self.state.history, "arch": arch.ops,
                   "layer_names": [list(l.candidates) for l in self.space.layers],
                   "supernet_valid_accuracy": self._accuracy_of(arch),
                   "decision": decision(self.net.probs()),
                   "derive": arch.meta.get("derive")}
        if "supernet_learned" in arch.meta:  # checked on the search's own choice (derive)
            summary.update({k: arch.meta[k] for k in ("chance_accuracy", "supernet_learned",
                                                      "search_choice")})
        else:
            summary.update(self.learned(summary["supernet_valid_accuracy"]))
        if "rerank" in arch.meta:
            summary["rerank"] = arch.meta["rerank"]
        if self.table is not None:
            summary["predicted_latency_ms"] = arch.meta.get("predicted_latency_ms")
            summary["fastest_latency_ms"] = self.fastest_ms
        write_json(self.out / "search.json", summary)
        return summary

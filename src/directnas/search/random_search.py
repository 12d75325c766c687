"""Random-search baseline: sample architectures under the latency target, train each briefly,
keep the best by validation accuracy — within the same wall-clock budget as a search.

Sampling is uniform over each layer's candidates, rejected unless the table's predicted latency
lies within ``tolerance * T`` of the target T (``tolerance=None``: anything <= T).  Every
candidate trains ``steps_per_arch`` batches from scratch on the training part of the data and is
scored on the validation split carved out of the training set (the same split size as a
search; never the test set).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from directnas.data import Dataset, split_train_valid
from directnas.errors import UserError
from directnas.fileio import write_json
from directnas.hardware.lut import LatencyTable
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from directnas.train import TrainConfig, train_net

log = logging.getLogger(__name__)


@dataclass
class RandomSearchConfig:
    budget_s: float = 600.0
    target_latency_ms: float | None = None
    tolerance: float | None = 0.1  # |LAT - T| <= tolerance * T; None: LAT <= T
    steps_per_arch: int = 100
    batch_size: int = 128
    lr: float = 0.1
    valid_size: int | None = None  # default: 10 % of the training set, at most 5000
    max_archs: int | None = None
    seed: int = 0
    threads: int = 2
    channels_last: bool = True
    device: str = "auto"  # cpu, cuda, cuda:N or auto (CUDA when there is one)


@dataclass
class Candidate:
    ops: list[str]
    predicted_latency_ms: float
    valid_accuracy: float = 0.0
    train_s: float = 0.0


@dataclass
class RandomSearchResult:
    best: Arch
    candidates: list[Candidate] = field(default_factory=list)
    wall_s: float = 0.0


class ArchSampler:
    """Uniform sampling over the architectures whose predicted latency lies in the window.

    Rejection sampling of uniform per-layer draws finds nothing at a tight target (at 1.5x the
    fastest net, fewer than one in 2000 uniform draws lands near T), so the sampler counts
    instead: a dynamic programme over layers gives, on a fine latency grid, how many
    architectures reach every partial latency, and each draw walks back through those counts --
    every architecture in the window is equally likely (up to the grid; a draw that the exact
    sum puts outside the window is drawn again).  Without a target it is uniform per layer."""

    def __init__(self, space: SearchSpace, table: LatencyTable, *, target_ms: float | None,
                 tolerance: float | None, seed: int, bins: int = 4000) -> None:
        self.space = space
        fixed, per_layer = table.space_latencies(space)
        self.fixed, self.per_layer = fixed, [np.asarray(r, dtype=np.float64) for r in per_layer]
        self.lo, self.hi = 0.0, np.inf
        if target_ms is not None:
            self.hi = target_ms * (1 + (tolerance or 0.0))
            self.lo = target_ms * (1 - tolerance) if tolerance is not None else 0.0
        self.rng = np.random.default_rng(seed)
        self.counts: list[np.ndarray] | None = None
        if np.isfinite(self.hi):
            self._count(bins)

    def _count(self, bins: int) -> None:
        budget = self.hi - self.fixed
        if budget < sum(float(r.min()) for r in self.per_layer):
            raise UserError(f"no architecture of space {self.space.name!r} is predicted at or below "
                            f"{self.hi:.3f} ms: raise --target-latency")
        self.res = budget / bins
        self.steps = [np.round(r / self.res).astype(np.int64) for r in self.per_layer]
        counts = [np.zeros(bins + 1)]
        counts[0][0] = 1.0
        for st in self.steps:  # counts[l][b]: archs of the first l layers in bin b
            c = np.zeros(bins + 1)
            for s in st:
                if s <= bins:
                    c[s:] += counts[-1][:bins + 1 - s]
            counts.append(c)
        self.counts = counts
        lo_bin = max(0, int(np.ceil((self.lo - self.fixed) / self.res)))
        self.window = np.arange(bins + 1) >= lo_bin
        if not (counts[-1] * self.window).any():
            raise UserError(f"no architecture of space {self.space.name!r} is predicted in "
                            f"[{self.lo:.3f}, {self.hi:.3f}] ms: move --target-latency or widen --tolerance")

    def latency_ms(self, ops: list[str]) -> float:
        return self.fixed + float(sum(r[l.candidates.index(op)] for r, l, op in
                                      zip(self.per_layer, self.space.layers, ops)))

    def _draw(self) -> list[int]:
        if self.counts is None:
            return [int(self.rng.integers(len(r))) for r in self.per_layer]
        w = self.counts[-1] * self.window
        b = int(self.rng.choice(len(w), p=w / w.sum()))
        idx = [0] * len(self.steps)
        for l in range(len(self.steps) - 1, -1, -1):  # walk back: op j with weight counts[l][b - s_j]
            st = self.steps[l]
            ways = np.array([self.counts[l][b - s] if s <= b else 0.0 for s in st])
            j = int(self.rng.choice(len(st), p=ways / ways.sum()))
            idx[l], b = j, b - int(st[j])
        return idx

    def sample(self, *, tries: int = 1000) -> Arch:
        for _ in range(tries):
            idx = self._draw()
            ops = [l.candidates[i] for l, i in zip(self.space.layers, idx)]
            if self.lo <= self.latency_ms(ops) <= self.hi:
                return Arch(self.space, ops)
        raise UserError(f"no architecture of space {self.space.name!r} found with predicted latency "
                        f"in [{self.lo:.3f}, {self.hi:.3f}] ms: widen --tolerance")


def random_search(space: SearchSpace, data: Dataset, table: LatencyTable, cfg: RandomSearchConfig, *,
                  on_candidate: Callable[[int, Candidate], None] | None = None) -> RandomSearchResult:
    c, h, w = data.input_shape
    if (c, h) != (space.input_channels, space.input_size) or h != w:
        raise UserError(f"dataset images are {c}x{h}x{w} but space {space.name!r} expects "
                        f"{space.input_channels}x{space.input_size}x{space.input_size}: pick a matching --space")
    if data.train.num_classes != space.num_classes:
        raise UserError(f"dataset has {data.train.num_classes} classes, space {space.name!r} "
                        f"{space.num_classes}: set num_classes in the space YAML")
    if cfg.budget_s <= 0 or cfg.steps_per_arch < 1:
        raise UserError("--budget-s must be > 0 and --steps-per-arch >= 1")
    valid_size = cfg.valid_size or min(5000, max(1, len(data.train) // 10))
    train, valid = split_train_valid(data.train, valid_size=valid_size, seed=cfg.seed)
    split = Dataset(data.name, train, valid, data.mean, data.std)  # "test" = validation split
    sampler = ArchSampler(space, table, target_ms=cfg.target_latency_ms, tolerance=cfg.tolerance,
                          seed=cfg.seed)
    tcfg = TrainConfig(epochs=1, max_steps=cfg.steps_per_arch, batch_size=cfg.batch_size, lr=cfg.lr,
                       seed=cfg.seed, threads=cfg.threads, channels_last=cfg.channels_last,
                       device=cfg.device)
    t0 = time.perf_counter()
    done: list[Candidate] = []
    seen: set[tuple[str, ...]] = set()
    best: tuple[float, Arch] | None = None
    while cfg.max_archs is None or len(done) < cfg.max_archs:
        elapsed = time.perf_counter() - t0
        per = elapsed / len(done) if done else 0.0
        if done and elapsed + per > cfg.budget_s:  # the next one would overrun the budget
            break
        arch = sampler.sample()
        if tuple(arch.ops) in seen:
            continue
        seen.add(tuple(arch.ops))
        t1 = time.perf_counter()
        acc = train_net(arch.build(), split, tcfg)["accuracy"]
        cand = Candidate(arch.ops, sampler.latency_ms(arch.ops), acc, time.perf_counter() - t1)
        done.append(cand)
        if best is None or acc > best[0]:
            best = (acc, arch)
        log.debug("candidate %d: acc %.4f, %.3f ms", len(done), acc, cand.predicted_latency_ms)
        if on_candidate is not None:
            on_candidate(len(done), cand)
    assert best is not None
    arch = best[1]
    arch.meta = {"strategy": "random", "seed": cfg.seed, "target_latency_ms": cfg.target_latency_ms,
                 "predicted_latency_ms": sampler.latency_ms(arch.ops),
                 "latency_backend": table.meta.get("backend"), "valid_accuracy": best[0]}
    return RandomSearchResult(arch, done, time.perf_counter() - t0)


def write_outputs(out: str | Path, result: RandomSearchResult, cfg: RandomSearchConfig,
                  space: SearchSpace) -> dict[str, Any]:
    """arch.json (same format as a search) and random_search.json (every candidate)."""
    out = Path(out)
    result.best.save(out / "arch.json")
    summary = {"config": asdict(cfg), "space": space.name, "search_wall_s": result.wall_s,
               "archs": len(result.candidates), "arch": result.best.ops,
               "predicted_latency_ms": result.best.meta["predicted_latency_ms"],
               "valid_accuracy": result.best.meta["valid_accuracy"],
               "candidates": [asdict(c) for c in result.candidates]}
    write_json(out / "random_search.json", summary)
    return summary

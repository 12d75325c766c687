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


from directnas.data.datasets import Dataset, split_train_valid
from directnas.errors import UserError
from directnas.utils.fileio import write_json
from directnas.latency.sampling import ArchSampler
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from directnas.training.train_net import TrainConfig, train_net
from directnas.utils.seeding import seed_everything
from directnas.utils.threads import usable_cores

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
    threads: int = field(default_factory=usable_cores)  # intra-op threads (the usable cores)
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
    seed_everything(cfg.seed)  # every candidate's initial weights, one stream from here
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

"""Re-time every trained net of a report side by side, in one process.

Each ``directnas train`` measures its net right after training, so nets trained hours apart (or
while something else ran) carry latencies taken under different machine states.  A plane of
accuracy vs latency, and any ratio read off it, should instead come from one interleaved
measurement: every net timed in each round, a fresh order per round, each round's statistic
(``proto.stat``, p10 by default) combined over rounds as ``proto.across`` says (the fastest
round by default; ``measure_interleaved``), so that drift hits all nets alike.  A fixed
reference net is timed in every round as well: its round-to-round spread is the noise floor
saved beside every re-timed latency (``latency_noise_floor``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from directnas.models.model_file import load_model
from directnas import runtimes
from directnas.latency.measure import (NOISE, REFERENCE, Protocol, Runner, measure_interleaved,
                                        reference_arch)
from directnas.report.writer import Run
from directnas.space.arch import Arch

log = logging.getLogger(__name__)


def model_path(run: Run) -> Path:
    """The ``model.pt`` of a pipeline run (``train/``) or of a train folder."""
    inner = run.folder / "train" / "model.pt"
    return inner if inner.exists() else run.folder / "model.pt"


def remeasure(runs: list[Run], *, backend: str, proto: Protocol, rounds: int = 5,
              progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda it: it) -> list[Run]:
    """Replace the latency in each trained run's metrics by a side-by-side measurement.

    The training-time figure is kept as ``latency_ms_at_training``.  Returns the re-timed runs
    (those with a test accuracy; the others are left as they are)."""
    trained = [r for r in runs if "test_accuracy" in r.metrics]
    runners: dict[str, Runner] = {}  # timed with proto.threads (measure_interleaved)
    reference: tuple[torch.nn.Module, tuple[int, ...], str] | None = None
    for r in trained:
        net, ck = load_model(model_path(r))
        shape = (proto.batch_size, *ck.input_shape)
        runners[r.name] = runtimes.get(backend).runner(net, shape, proto)
        if reference is None and ck.arch:
            ref = reference_arch(Arch.from_dict(ck.arch).space)
            reference = (ref.build().eval(), shape, "the space's reference net " + " ".join(ref.ops))
    if reference is None and trained:
        # no net of a search space (baselines only): a second copy of the first net is the
        # fixed net every round is held against
        net, ck = load_model(model_path(trained[0]))
        reference = (net, (proto.batch_size, *ck.input_shape), f"a copy of {trained[0].name}")
    if reference is not None:
        runners[REFERENCE] = runtimes.get(backend).runner(reference[0], reference[1], proto)
    log.info("timing %d nets side by side: %d rounds x (%d warm-up + %d repeats)", len(runners), rounds,
             proto.warmup, proto.repeats)
    measured = measure_interleaved(runners, proto, rounds=rounds, progress=progress)
    noise = measured.get(NOISE, {})
    for r in trained:
        m = r.metrics
        if "latency_ms" in m and "latency_ms_at_training" not in m:
            m["latency_ms_at_training"] = m["latency_ms"]
        m.update({"latency_ms": measured[r.name]["ms"], "latency_spread_ms": measured[r.name]["spread_ms"],
                  "latency_backend": backend, "latency_threads": proto.threads,
                  "latency_batch_size": proto.batch_size,
                  "latency_side_by_side": {"rounds": rounds, "warmup": proto.warmup,
                                           "repeats": proto.repeats, "nets": len(trained),
                                           "stat": proto.stat}})
        if "noise_floor" in noise:  # with one round there is no round spread
            m.update({"latency_noise_floor": noise["noise_floor"], "latency_reference_ms": noise["ms"],
                      "latency_reference": reference[2] if reference else None})
    return trained

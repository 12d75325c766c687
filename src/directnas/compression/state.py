"""What flows through a chain of compression methods: the net, its options and its notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from directnas import runtimes
from directnas.compression.finetune import FinetuneConfig, Progress, eval_batches
from directnas.data.datasets import Dataset
from directnas.latency.measure import Protocol, measure_net
from directnas.models.model_file import ModelFile


@dataclass
class CompressConfig:
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    sparsity: float | None = None   # overall target of prune; None: from `tolerance` alone
    tolerance: float = 0.01         # accuracy drop one layer may cost in the sensitivity analysis
    uniform: bool = False           # prune: the same sparsity in every layer, no sensitivity
    allocation: str = "equal-drop"  # prune: per-layer split of --sparsity (or per-weight)
    prune_steps: int = 3            # iterative prune + retrain rounds
    bits_conv: int = 8              # share: 2**b centroids per conv layer
    bits_fc: int = 5                # share: 2**b centroids per linear layer
    gap_bits: int = 5               # sparse positions: relative gaps of up to 2**gap_bits
    fixed_bits: int = 8             # fixed-point: bit width kept for weights and feature maps
    report_bits: tuple[int, ...] = (16, 8, 6, 4)
    speedup: float = 2.0            # lowrank: target MAC speed-up per layer
    ternary_threshold: float = 0.05
    valid_images: int = 2000        # training images scored by sensitivity / greedy choices
    calib_images: int = 256         # int8 calibration images
    int8_formats: tuple[str, ...] = field(  # int8 artifacts (deploy.int8): every runtime's
        default_factory=lambda: tuple(runtimes.int8_formats()))
    int8_batch: int = 1             # int8: batch the artifacts are exported and timed at
    threads: int = 2
    latency_repeats: int = 50
    latency_warmup: int = 10
    latency_rounds: int = 5         # int8: interleaved timing rounds of the artifacts
    target_ratio: float | None = None  # recipe search: least loss at this ratio (x)
    max_loss: float | None = None   # recipe search: largest ratio within this loss (fraction)
    probe_steps: int = 300          # max-loss search: retraining steps of one probe
    layer_sparsity: dict[str, float] | None = None  # prune: per-layer targets (from the search)
    layer_bits: dict[str, int] | None = None        # share: per-layer bits (from the search)


@dataclass
class State:
    net: nn.Module
    file: ModelFile                 # the model file the net came from
    data: Dataset
    cfg: CompressConfig
    out: Path
    progress: Progress = lambda it, desc, n: it
    huffman: bool = False
    fixed: dict[str, tuple[int, int]] = field(default_factory=dict)  # weight name -> (bw, fl)
    structure: dict[str, Any] = field(default_factory=dict)  # rebuild info (lowrank, act_fl)
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-layer notes
    report: dict[str, Any] = field(default_factory=dict)     # per-method results
    deployed: dict[str, Any] | None = None                   # int8: headline artifact

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.file.input_shape)  # type: ignore[return-value]

    def valid(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Training images (not augmented, held in memory) used to choose per-layer settings."""
        return list(eval_batches(self.data, self.data.train, limit=self.cfg.valid_images))

    def calib_batch(self, n: int) -> torch.Tensor:
        b = eval_batches(self.data, self.data.train, limit=n)
        return torch.cat([x for x, _ in b])

    def latency_ms(self) -> float:
        """Median torch-cpu latency of the net at batch 1 (timed with ``cfg.threads``)."""
        proto = Protocol(threads=self.cfg.threads, warmup=self.cfg.latency_warmup,
                         repeats=self.cfg.latency_repeats)
        return measure_net(self.net, self.input_shape, proto=proto)["ms"]

    def note(self, layer: str, **kv: Any) -> None:
        self.layers.setdefault(layer, {}).update(kv)


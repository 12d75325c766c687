"""torch.distributed glue for ``torchrun --nproc-per-node N -m directnas search|train ...``.

``init_from_env()`` starts the process group when ``WORLD_SIZE > 1`` (``gloo`` for CPU tensors,
``nccl`` when the run's tensors live on a CUDA device) and returns a ``Dist``; without torchrun it
returns the single-process ``Dist()`` whose collectives are no-ops, so callers never branch.

Every rank runs the same sub-network in a step (gates drawn from identically seeded generators),
so the set of parameters with a gradient is the same on every rank: one flat, bucketed
all-reduce of exactly those gradients replaces DistributedDataParallel's hooks (which would
need ``find_unused_parameters=True`` and a graph walk per step for the single-path supernet).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

import torch
import torch.distributed as td

from directnas.errors import UserError

log = logging.getLogger(__name__)
T = TypeVar("T")
BUCKET_NUMEL = 1 << 22  # 4 M floats (16 MB) per all-reduce call


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; ``world == 1`` means no process group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            td.barrier()

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter],
                         extra: torch.Tensor | None = None) -> torch.Tensor | None:
        """Average the gradients of ``params`` that have one (and ``extra``, e.g. the loss)
        over all ranks in place; returns the averaged ``extra``."""
        if not self.active:
            return extra
        grads = [p.grad for p in params if p.grad is not None]
        if extra is not None:
            grads.append(extra.detach().reshape(1).clone())
        for bucket in _buckets(grads):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            td.all_reduce(flat)
            flat.div_(self.world)
            offset = 0
            for g in bucket:
                n = g.numel()
                g.copy_(flat[offset:offset + n].view_as(g))
                offset += n
        return grads[-1].reshape(()) if extra is not None else None

    def broadcast_tensors(self, tensors: Iterable[torch.Tensor]) -> None:
        """Copy rank 0's values into ``tensors`` on every rank (e.g. BatchNorm running stats)."""
        if not self.active:
            return
        with torch.no_grad():
            for t in tensors:
                td.broadcast(t, src=0)

    def broadcast_object(self, obj: T) -> T:
        if not self.active:
            return obj
        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def run_on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0 only; its result (or its UserError) reaches every rank."""
        if not self.active:
            return fn()
        result: Any = None
        if self.is_main:
            try:
                result = ("ok", fn())
            except UserError as e:
                result = ("error", str(e))
        result = self.broadcast_object(result)
        if result[0] == "error":
            raise UserError(result[1])
        return result[1]

    def check_same(self, tensors: Iterable[torch.Tensor], what: str) -> None:
        """Raise if ``tensors`` differ between ranks (compares a digest, not the values)."""
        if not self.active:
            return
        h = hashlib.sha256()
        for t in tensors:
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        d = torch.tensor([int.from_bytes(h.digest()[:7], "little")], dtype=torch.int64)
        lo, hi = d.clone(), d.clone()
        td.all_reduce(lo, op=td.ReduceOp.MIN)
        td.all_reduce(hi, op=td.ReduceOp.MAX)
        if int(lo) != int(hi):
            raise RuntimeError(f"ranks disagree on {what}: the run is no longer data-parallel")


def _buckets(grads: list[torch.Tensor]) -> Iterable[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    n = 0
    for g in grads:
        if bucket and (n + g.numel() > BUCKET_NUMEL or g.dtype != bucket[0].dtype):
            yield bucket
            bucket, n = [], 0
        bucket.append(g)
        n += g.numel()
    if bucket:
        yield bucket


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA tensors, ``gloo`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_from_env(device: torch.device | None = None) -> Dist:
    """The job's ``Dist`` from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if td.is_initialized():
        return Dist(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                    td.get_backend())
    if not td.is_available():
        raise UserError("WORLD_SIZE > 1 but this torch build has no torch.distributed: "
                        "run without torchrun or install a torch with distributed support")
    backend = backend_for(device or torch.device("cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    td.init_process_group(backend=backend)
    atexit.register(_shutdown)
    dist = Dist(td.get_rank(), td.get_world_size(), local_rank, backend)
    log.info("rank %d of %d (%s)", dist.rank, dist.world, backend)
    return dist


def _shutdown() -> None:
    if td.is_initialized():
        td.destroy_process_group()

"""The measuring protocol, the ``Runtime`` record and the one registry of runtimes.

A runtime runs a net somewhere: ``--backend NAME`` times ops and whole nets in it (``runner``:
an ``nn.Module`` and an input shape -> a callable that runs one inference), and ``directnas
export --format FORMAT`` writes the artifact it runs (``write``) and runs that artifact
(``load``).  Each module of this package builds one ``Runtime`` and ``register``s it; the
latency side looks runtimes up by name (``get``), export by artifact format (``by_format``).

A runner is a callable; a runner that has its own clock (CUDA events) also has ``time_ms()``,
which runs once and returns the elapsed milliseconds (``latency.measure.time_runner`` uses it).
"""

from __future__ import annotations

import importlib.util
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from directnas.errors import UserError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# "median" is the field's protocol.  On a shared, loaded machine a call is preempted with a
# probability that grows with its length, so the median of a whole network rises more than the
# sum of its ops' medians; a low quantile ("p10", "min") is then closer to additive.
# The "cpu" clock (single-threaded CPU backends only) leaves out the time the process waits for a
# core, which on a loaded machine is most of a long call's spread.
STATS = ("median", "p25", "p10", "min", "mean")
CLOCKS = ("wall", "cpu")
ACROSS = ("median", "min")  # how the rounds' figures of one net become its latency
DEFAULT = "torch-cpu"  # the backend when none is named
# deployment runtimes, best first: the default backend of ``directnas run`` is the first installed
DEPLOYMENT = ("executorch-xnnpack", "openvino-cpu", "onnxruntime-cpu", "torch-cpu")


@dataclass(frozen=True)
class Protocol:
    """How a latency is measured: batch, threads, warm-up, repeats, dtype, statistic, clock,
    interleaved rounds."""

    batch_size: int = 1
    threads: int = 1  # batch-1 latency: one thread (two are slower for small nets)
    warmup: int = 10
    repeats: int = 30
    dtype: str = "float32"
    channels_last: bool = False
    stat: str = "p10"  # statistic of the repeats kept per round as "ms" (see STATS)
    clock: str = "wall"  # "wall" (perf_counter) or "cpu" (this thread's CPU time; threads=1 only)
    rounds: int = 5  # interleaved rounds
    # how rounds combine (see ACROSS): "min", the fastest round, unscaled.  A shared host flips
    # between a fast and a 1.4-1.7x slower state within seconds; a round of one net falls in
    # either, the median mixes them (photos-32: held-out MAPE 12.1 %, tau 0.68 with "median",
    # 1.4 % and 0.98 with "min", BENCHMARKS.md).  "median": scaled by the drift reference
    across: str = "min"


Shape = tuple[int, ...]
Runner = Callable[[], object]
RunnerFactory = Callable[[nn.Module, Shape, Protocol], Runner]
BulkRunnerFactory = Callable[[dict[str, tuple[nn.Module, Shape]], Protocol], dict[str, Runner]]
ArtifactWriter = Callable[[nn.Module, Shape, Path], None]
ArtifactLoader = Callable[[Path, torch.Tensor, int], Runner]


def file_size(path: Path) -> int:
    """Bytes on disk of a one-file artifact."""
    return Path(path).stat().st_size


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def missing_module(module: str) -> Callable[[], str | None]:
    """A check that says ``"<package> is not installed"`` when ``module`` cannot be imported."""

    def check() -> str | None:
        return None if importable(module) else f"{module.split('.')[0]} is not installed"

    return check


def _always() -> str | None:
    return None


@dataclass(frozen=True)
class Int8:
    """How a runtime writes a statically quantized int8 artifact of a float32 net.

    ``write(net, shape, calib, path, layout)`` writes it at ``path`` (atomically), its activation
    ranges calibrated on ``calib`` (N, C, H, W) images in [0, 1]; ``describe(layout)`` is the
    quantizer's record; with several ``layouts`` each is written and timed and the faster kept;
    ``needs``: the module the quantizer imports, ``label``: how a warning names what to install
    when it is missing."""

    write: Callable[[nn.Module, Shape, torch.Tensor, Path, str | None], None]
    describe: Callable[[str | None], dict[str, Any]]
    needs: str
    label: str
    layouts: tuple[str, ...] = ()

    def installed(self) -> bool:
        return importable(self.needs)


@dataclass(frozen=True)
class Runtime:
    """One runtime: how to time a module in it and how to write and run its artifact.

    ``name``: the ``--backend`` name; ``format`` / ``suffix``: its artifact's ``--format`` name
    and file suffix; ``runner(module, shape, proto)``: a runner timing ``module`` (never changed)
    on a fixed input; ``runners(items, proto)``: many at once, when the runtime lowers in bulk;
    ``write(net, shape, path)``: the artifact of an eval-mode float32 net at ``path`` (suffix
    set), atomically; ``load(path, x, threads)``: a runner of the artifact on ``x`` (read in
    place on every call), returning its output; ``version()``: the artifact runtime's name and
    version; ``versions()``: the library versions (and device) a latency table measured here
    depends on; ``usage``: the README snippet running the artifact (``{name}``, ``{shape}``);
    ``extra``: the pip extra it needs (None: core); ``any_batch``: the artifact takes any batch
    (else the batch it was written with); ``size(path)``: its bytes on disk; ``int8``: its int8
    writer; ``artifact_runtime``: the runtime that runs and times its artifact when not itself;
    ``unavailable()``: why it cannot run here (None: it can)."""

    name: str
    format: str
    suffix: str
    runner: RunnerFactory
    write: ArtifactWriter
    load: ArtifactLoader
    version: Callable[[], str]
    versions: Callable[[], dict[str, str]]
    usage: str
    extra: str | None = None
    runners: BulkRunnerFactory | None = None
    any_batch: bool = False
    size: Callable[[Path], int] = file_size
    int8: Int8 | None = None
    artifact_runtime: str | None = None
    unavailable: Callable[[], str | None] = _always

    def export(self, net: nn.Module, shape: Shape, path: str | Path) -> Path:
        """Write ``net``'s artifact at ``path`` with this runtime's suffix; returns the path.
        A net the exporter cannot take is one ``UserError`` naming the op (``lowering``)."""
        path = Path(path).with_suffix(self.suffix)
        with lowering(self.name):
            self.write(net, shape, path)
        return path

    def make_runners(self, items: dict[str, tuple[nn.Module, Shape]], proto: Protocol
                     ) -> dict[str, Runner]:
        """Runners for many ``name: (module, shape)`` at once (in bulk where it lowers so)."""
        with lowering(self.name):
            if self.runners is not None:
                return self.runners(items, proto)
            return {k: self.runner(m, s, proto) for k, (m, s) in items.items()}


_RUNTIMES: dict[str, Runtime] = {}
# how exporters name an op in their messages: aten::fft_rfft, aten.abs.default, ...
_OP = re.compile(r"\baten(?:::|\.)[A-Za-z0-9_]+")
_WHERE = re.compile(r"Caused by: \(([^)]+)\)")


def lowering_error(runtime: str, e: BaseException) -> UserError:
    """What an exporter or runtime raised for a net it cannot take, as one line naming the op
    (or, when the message names none, the place in the net and the error's first line)."""
    text = str(e).strip()
    op = _OP.search(text)
    where = _WHERE.search(text)
    first = text.splitlines()[0][:160] if text else ""
    what = f"the op {op.group(0)}" if op else "this net" + (f" ({where.group(1)})" if where else "")
    return UserError(f"runtime {runtime} cannot take {what} ({type(e).__name__}: {first}): "
                     "replace it in the net or use another backend/format (e.g. torch-cpu)")


@contextmanager
def lowering(runtime: str) -> Iterator[None]:
    """Errors of an exporter or runtime on a net (not the user's inputs, the disk or an
    interrupt) become ``lowering_error``'s one line."""
    try:
        yield
    except (UserError, OSError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - any exporter's failure means it cannot take the net
        raise lowering_error(runtime, e) from None


def register(runtime: Runtime) -> Runtime:
    """Add ``runtime`` to the registry (its name must be new); returns it."""
    if runtime.name in _RUNTIMES:
        raise ValueError(f"runtime {runtime.name!r} registered twice")
    _RUNTIMES[runtime.name] = runtime
    return runtime


def unregister(name: str) -> None:
    """Remove the runtime ``name`` from the registry (nothing when it is not there)."""
    _RUNTIMES.pop(name, None)


def names() -> list[str]:
    """The ``--backend`` names, in registration order."""
    return list(_RUNTIMES)


def get(name: str) -> Runtime:
    """The runtime of ``--backend name``; one-line ``UserError`` naming the choices otherwise."""
    if name not in _RUNTIMES:
        raise UserError(f"unknown backend {name!r}: use one of {', '.join(sorted(_RUNTIMES))}")
    return _RUNTIMES[name]


def for_backend(name: str | None) -> Runtime:
    """The runtime whose artifact ships for a search on backend ``name``: its own, or the default
    one's when no backend was named or it is no runtime here (an imported table's)."""
    rt = _RUNTIMES.get(name or DEFAULT) or _RUNTIMES[DEFAULT]
    return get(rt.artifact_runtime) if rt.artifact_runtime else rt


def best_installed() -> str:
    """The best deployment runtime that runs here: the first of ``DEPLOYMENT`` (ExecuTorch +
    XNNPACK, then OpenVINO, then onnxruntime, then eager torch) that is registered and whose
    ``unavailable()`` finds nothing missing; ``DEFAULT`` when none is."""
    for name in DEPLOYMENT:
        rt = _RUNTIMES.get(name)
        if rt is not None and rt.unavailable() is None:
            return name
    return DEFAULT


def formats() -> list[str]:
    """The artifact formats (``--format`` names), in registration order of their runtimes."""
    return list(dict.fromkeys(rt.format for rt in _RUNTIMES.values()
                              if rt.artifact_runtime is None))


def by_format(fmt: str) -> Runtime:
    """The runtime that runs and times artifacts of format ``fmt``."""
    for rt in _RUNTIMES.values():
        if rt.format == fmt and rt.artifact_runtime is None:
            return rt
    raise UserError(f"unknown export format {fmt!r}: use one of {', '.join(formats())}")


def int8_formats() -> list[str]:
    """The formats whose runtime writes int8 artifacts."""
    return [f for f in formats() if by_format(f).int8 is not None]

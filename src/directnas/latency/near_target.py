"""Re-anchor a calibrated latency table at the target the search will aim for.

The correction that ``profile`` fits on its covering nets (``latency.calibrate``) is a line
through nets spread over the whole space.  A search ends near its target, often below those nets,
and the profile's many interleaved runners run slower than one net timed alone, as an exported
artifact is: on this project's machines the demo net was predicted 1.4x its artifact's latency.
So before the search, ``refine_near_target`` times a few whole nets drawn uniformly from those
the table predicts near the target, in one small interleaved measurement with the drift
reference (as an artifact is timed), and scales the correction by the median of
measured / predicted over them.  The nets, their figures and the scale go into the table's
meta as a ``NearTarget`` record (``meta["near_target"]``, written with ``to_dict`` and read with
``NearTarget.of``), so the adjustment is data that can be read and checked.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from directnas.errors import UserError
from directnas.runtimes import Protocol
from directnas.latency.correction import Correction
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import predict_arch_ms
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace

log = logging.getLogger(__name__)

NEAR_NETS = 8
NEAR_WINDOW = (0.85, 1.10)   # the window the target is held to


@dataclass
class TimedNet:
    """A whole net timed in the near-target session: its ops, its latency predicted by the
    profiled table and as measured; ``ratio`` = measured / predicted (the nets near T only)."""

    ops: list[str]
    predicted_ms: float
    measured_ms: float
    ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"ops": list(self.ops), "predicted_ms": self.predicted_ms,
                             "measured_ms": self.measured_ms}
        if self.ratio is not None:
            d["ratio"] = self.ratio
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TimedNet":
        ratio = d.get("ratio")
        return cls(list(d["ops"]), float(d["predicted_ms"]), float(d["measured_ms"]),
                   None if ratio is None else float(ratio))


@dataclass
class ResolvedTarget:
    """A relative target (``spec``, e.g. ``"1.5x"``) taken of the fastest net as timed
    (``fastest_measured_ms``): ``target_ms``; on the profiled table it would have been
    ``profiled_target_ms``; ``passes``: how many sets of near-target nets were timed."""

    spec: str
    fastest_measured_ms: float
    target_ms: float
    profiled_target_ms: float
    passes: int

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "fastest_measured_ms": self.fastest_measured_ms,
                "target_ms": self.target_ms, "profiled_target_ms": self.profiled_target_ms,
                "passes": self.passes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ResolvedTarget":
        return cls(str(d["spec"]), float(d["fastest_measured_ms"]), float(d["target_ms"]),
                   float(d["profiled_target_ms"]), int(d["passes"]))


@dataclass
class NearTarget:
    """The ``near_target`` record of a table re-anchored near a target (``refine_near_target``
    writes it into the table's meta as a dict; ``NearTarget.of(table)`` reads it back).

    ``target_ms``: where the nets were drawn (predicted in ``window`` around it); ``scale``: the
    median measured / predicted over ``nets``, by which the correction was multiplied;
    ``reference_ms`` / ``noise_floor``: the drift reference timed in the same ``rounds`` on
    ``backend``; ``fastest``: the space's fastest net timed beside them (what a relative
    target is a multiple of); ``resolved``: that relative target, once resolved."""

    target_ms: float
    scale: float
    nets: list[TimedNet] = field(default_factory=list)
    window: tuple[float, float] = NEAR_WINDOW
    reference_ms: float | None = None
    noise_floor: float | None = None
    rounds: int | None = None
    backend: str | None = None
    fastest: TimedNet | None = None
    resolved: ResolvedTarget | None = None

    KEY = "near_target"  # its key in the table's meta

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"target_ms": self.target_ms, "window": list(self.window),
                             "scale": self.scale, "nets": [n.to_dict() for n in self.nets],
                             "reference_ms": self.reference_ms, "noise_floor": self.noise_floor,
                             "rounds": self.rounds, "backend": self.backend}
        if self.fastest is not None:
            d["fastest"] = self.fastest.to_dict()
        if self.resolved is not None:
            d["resolved"] = self.resolved.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NearTarget":
        lo, hi = d.get("window") or NEAR_WINDOW
        return cls(target_ms=float(d["target_ms"]), scale=float(d["scale"]),
                   nets=[TimedNet.from_dict(r) for r in d.get("nets") or []],
                   window=(float(lo), float(hi)), reference_ms=d.get("reference_ms"),
                   noise_floor=d.get("noise_floor"), rounds=d.get("rounds"),
                   backend=d.get("backend"),
                   fastest=TimedNet.from_dict(d["fastest"]) if d.get("fastest") else None,
                   resolved=ResolvedTarget.from_dict(d["resolved"]) if d.get("resolved") else None)

    @classmethod
    def of(cls, table: LatencyTable | Mapping[str, Any]) -> "NearTarget | None":
        """The record of ``table`` (or of a table's meta); None when it was not re-anchored."""
        meta = table.meta if isinstance(table, LatencyTable) else table
        d = meta.get(cls.KEY)
        return cls.from_dict(d) if d else None


def near_target_archs(space: SearchSpace, table: LatencyTable, target_ms: float, n: int = NEAR_NETS,
                      *, seed: int = 0) -> list[Arch]:
    """Up to ``n`` distinct nets drawn uniformly from those ``table`` predicts in the window."""
    from directnas.latency.sampling import ArchSampler

    lo, hi = NEAR_WINDOW
    mid = (lo + hi) / 2
    try:
        sampler = ArchSampler(space, table, target_ms=mid * target_ms, tolerance=(hi - lo) / 2 / mid,
                              seed=seed)
    except UserError:  # no net is predicted near the target (e.g. above the slowest net)
        return []
    out: list[Arch] = []
    for _ in range(50 * n):
        a = sampler.sample()
        if all(a.ops != b.ops for b in out):
            out.append(a)
        if len(out) == n:
            break
    return out


FASTEST = "fastest"


def fastest_arch(space: SearchSpace, table: LatencyTable) -> Arch:
    """The net ``table`` predicts fastest: each layer's cheapest candidate."""
    _, per_layer = table.space_latencies(space)
    return Arch(space, [layer.candidates[min(range(len(row)), key=row.__getitem__)]
                        for layer, row in zip(space.layers, per_layer)])


def scaled(corr: Correction | None, scale: float) -> Correction:
    """``corr`` with every prediction multiplied by ``scale`` (> 0); ``None``: the plain sum."""
    if corr is None:
        return Correction(["sum_ms"], [scale], 0.0, {"kind": "near-target scale only"})
    return Correction(list(corr.features), [scale * c for c in corr.coef], scale * corr.intercept,
                      dict(corr.fit))


def refine_near_target(table: LatencyTable, space: SearchSpace, target_ms: float, *, backend: str,
                       proto: Protocol, n: int = NEAR_NETS, seed: int = 0,
                       progress: Callable[[Iterable], Iterable] = lambda it: it) -> LatencyTable:
    """``table`` with its correction scaled so that nets predicted near ``target_ms`` are
    predicted at their measured latency (the median ratio over ``n`` of them, timed on
    ``backend`` with ``proto`` and a drift reference in interleaved rounds)."""
    from directnas.latency.measure import NOISE, measure_space

    base = table
    prev = NearTarget.of(table)
    if prev:  # refining a refined table: start again from the profile's own correction
        base = LatencyTable({k: v for k, v in table.meta.items() if k != NearTarget.KEY}, table.entries,
                            scaled(table.correction, 1.0 / prev.scale) if table.correction else None)
    archs = near_target_archs(space, base, target_ms, n, seed=seed)
    if not archs:
        log.info("no net of the space is predicted near %.3f ms: the table is used as profiled", target_ms)
        return base
    nets = {f"near{i}": a for i, a in enumerate(archs)}
    fastest = fastest_arch(space, base)
    measured = measure_space(space, backend=backend, proto=proto, rounds=proto.rounds,
                             nets={**nets, FASTEST: fastest}, skip_ops=None, seed=seed,
                             progress=progress)
    rows: list[TimedNet] = []
    for name, a in nets.items():
        p = predict_arch_ms(a, base)
        m = float(measured[name]["ms"])
        rows.append(TimedNet(list(a.ops), p, m, ratio=m / p))
    scale = float(statistics.median(r.ratio for r in rows if r.ratio is not None))
    noise = measured.get(NOISE, {})
    meta = dict(base.meta)
    meta[NearTarget.KEY] = NearTarget(
        target_ms=target_ms, window=NEAR_WINDOW, scale=scale, nets=rows,
        reference_ms=noise.get("ms"), noise_floor=noise.get("noise_floor"),
        rounds=proto.rounds, backend=backend,
        # timed beside them, not part of the scale: what a relative target ("1.5x the fastest
        # net") is a multiple of, as the machine runs now
        fastest=TimedNet(list(fastest.ops), predict_arch_ms(fastest, base),
                         float(measured[FASTEST]["ms"]))).to_dict()
    corr = scaled(base.correction, scale)
    corr.fit["near_target_scale"] = scale
    floor = noise.get("noise_floor")
    log.info("near %.3f ms: %d nets measured/predicted median %.3f (noise floor %s)", target_ms,
             len(rows), scale, f"{100 * floor:.1f} %" if isinstance(floor, float) else "not measured")
    return LatencyTable(meta, base.entries, corr)


def anchor_target(table: LatencyTable, space: SearchSpace, spec: float | str, *, backend: str,
                  proto: Protocol, n: int = NEAR_NETS, seed: int = 0,
                  progress: Callable[[Iterable], Iterable] = lambda it: it,
                  ) -> tuple[LatencyTable, float]:
    """(``table`` re-anchored near the target, the target in ms) for a target in ms or a
    multiple of the fastest net (``"1.5x"``).

    A multiple is taken of the fastest net *as timed* beside the near-target nets, not as the
    profile predicts it: the profile's whole-net line extrapolates down to the fastest net and
    carries the profile session's speed (one machine's fastest net: predicted 0.063-0.117 ms in
    four profiles, timed 0.063-0.072 ms).  When that moves the target out of the window the first nets were timed in,
    a second set is drawn and timed near the new target, so the scale belongs to it."""
    from directnas.latency.target import parse_target, resolve_target

    spec = parse_target(spec)
    first = resolve_target(spec, space, table)
    assert first is not None
    refined = refine_near_target(table, space, first, backend=backend, proto=proto, n=n, seed=seed,
                                 progress=progress)
    near = NearTarget.of(refined)
    if not isinstance(spec, str) or near is None or near.fastest is None:
        return refined, first
    mult = float(spec[:-1])
    fastest = near.fastest.measured_ms
    target = round(mult * fastest, 4)
    timed_at = near.scale * first      # where the first nets run, in measured ms
    passes = 1
    if not 0.95 <= target / timed_at <= 1.05:
        again = refine_near_target(table, space, target / near.scale, backend=backend,
                                   proto=proto, n=n, seed=seed, progress=progress)
        again_near = NearTarget.of(again)
        if again_near is not None:
            refined, near, passes = again, again_near, 2
    near.resolved = ResolvedTarget(spec, fastest, target, first, passes)
    refined.meta[NearTarget.KEY] = near.to_dict()
    log.info("target %s of the fastest net as timed (%.4f ms) = %.4f ms (the profiled table "
             "said %.4f ms)", spec, fastest, target, first)
    return refined, target

"""The run's reference points: nets trained with the searched net's recipe on the same data and
timed as its artifact is, beside it, so that a report shows whether the search beat them.

One target's references live in ``<target folder>/references/``:

* ``random-1`` ... ``random-N``: nets of the searched space drawn uniformly
  (``latency.sampling.ArchSampler``) among those whose predicted latency on the run's table lies
  in the searched net's window [0.9 T, T] (T: the target, or the searched net's predicted latency
  when no target was given); distinct from each other and from the searched net;
* the hand-designed family at the data's input size: ``mobilenetv2-W`` and
  ``mobilenetv3-small`` / ``-large`` (``models.zoo``), built from the same inverted-residual ops
  as the space, with the space's activation (no squeeze-and-excitation, no h-swish: the spaces
  have neither).

Each is a stage folder ``references/<name>/`` (``stage.json``, ``model.pt``, ``metrics.json``,
``curves.json``, ``export/``), trained with the run's training config (its epochs may be set
apart, ``epochs``) and exported as the searched net's artifact (same runtime, checked on the
test set).  Then every artifact, the searched net's included, is timed interleaved in one session
(``deploy.export.time_artifacts``: the artifact's runtime, threads and rounds, batch 1, the
space's reference net in every round) -> ``references/references.json``, which reports read.
Called again, finished references are skipped and the session is reused unless an artifact is
newer than it or the set of nets changed.

Cost: each reference is one more training with the searched net's recipe.  By default all of
them together get ``REFERENCE_BUDGET`` (1/3) of the searched net's training epochs, split evenly
and at least one epoch and ``REFERENCE_MIN_STEPS`` (250) weight steps each (on small data a third
split seven ways is a few dozen steps), the searched net retrained at that budget beside them so
that the comparison is at equal recipe; the default hand-designed pair is the cheapest of each family
(mobilenetv2-0.35, mobilenetv3-small: 0.7x-1.1x the MACs of a typical searched net at 28x28),
so the default seven nets cost about a third of its training plus their exports and one timing
session.  The demo measured the old default (ten nets at 1/8 of its epochs each, 2 epochs) at
60 min beside its 32-min training, which put it far over its hour; ``--reference-models`` adds
the larger MobileNets (mobilenetv2-0.5/0.75, mobilenetv3-large: up to 2.7x the MACs, about 8x
the time per step at 28x28) and ``--references-epochs`` sets any budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from directnas import runtimes
from directnas.deploy.export import time_artifacts
from directnas.errors import UserError
from directnas.latency.measure import reference_arch
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.sampling import ArchSampler
from directnas.latency.table import LatencyTable
from directnas.models.registry import build_named, model_names
from directnas.models.zoo.mobilenetv2 import mobilenetv2_arch
from directnas.models.zoo.mobilenetv3 import BNECKS, mobilenetv3_arch
from directnas.pipeline.export import export_model
from directnas.pipeline.runfolder import RunFolder
from directnas.pipeline.stages import options_key, train_stage
from directnas.pipeline.train import Built, TrainResult, train_built
from directnas.report.references import RETRAINED, versus
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from directnas.training.budget import steps_per_pass, train_epochs
from directnas.training.train_net import TrainConfig
from directnas.utils.fileio import read_json, write_json
from directnas.utils.seeding import seed_everything

if TYPE_CHECKING:
    from directnas.pipeline.run import Plan

RANDOM = 4
MODELS = ("mobilenetv2-0.35", "mobilenetv3-small")  # the cheapest of each family
MORE_MODELS = ("mobilenetv2-0.5", "mobilenetv2-0.75", "mobilenetv3-large")
# all references' training epochs together as a share of the searched net's (unless
# --references-epochs is given), split evenly among them, at least one each
REFERENCE_BUDGET = 1 / 3
# ...but never under this many weight steps each: on small data that share is a few dozen steps,
# which ranks nothing (the sign-language photos, 12 steps a pass: 5 epochs = 60 steps left every
# net at 73-80 %; at 192-252 steps the nets of one window were at 94-97 %, within about 1.5
# points of each other, BENCHMARKS.md "Sign-language photos").  A sixth of the 1,500 updates a
# training from scratch gets at least (training.budget); the demo's and CIFAR-10's one epoch
# (468 and 390 steps) is above it already.
REFERENCE_MIN_STEPS = 250
WINDOW = (0.9, 1.0)  # of T: where the random references are drawn (predicted latency)
SESSION = "references.json"
# how export times an artifact (deploy.export.time_artifact's calls per round)
WARMUP, REPEATS = 10, 30


@dataclass(frozen=True)
class ReferenceOptions:
    """Which references a run trains: ``random`` nets of the searched net's window, the named
    hand-designed ``models`` (registry names), trained for ``epochs`` (None: their share of
    ``REFERENCE_BUDGET``, ``reference_epochs``)."""

    random: int = RANDOM
    models: tuple[str, ...] = field(default=MODELS)
    epochs: int | None = None

    @classmethod
    def of(cls, value: "ReferenceOptions | Mapping[str, Any] | bool | None"
           ) -> "ReferenceOptions | None":
        """``value`` checked: None/False (no references), True (the defaults), a mapping of
        these fields or an instance."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, Mapping):
            unknown = set(value) - {f.name for f in fields(cls)}
            if unknown:
                raise UserError(f"unknown reference option(s) {', '.join(sorted(unknown))}: use "
                                "random, models, epochs")
            value = cls(**{**value, "models": tuple(value.get("models", MODELS))})
        value.check()
        return value

    def check(self) -> None:
        if not isinstance(self.random, int) or self.random < 0:
            raise UserError(f"--references must be >= 0 (random nets), got {self.random!r}")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise UserError(f"--references-epochs must be >= 1, got {self.epochs!r}")
        bad = [m for m in self.models if m not in model_names()]
        if bad:
            raise UserError(f"unknown reference model(s) {', '.join(bad)}: use names from "
                            f"{', '.join(model_names())}")


@dataclass
class Reference:
    """One reference net: its folder name, its family (``random``, ``mobilenetv2``, ...), its
    architecture (None for a named model not built from a space) and its registry name."""

    name: str
    kind: str
    arch: Arch | None
    model: str | None = None

    def built(self, input_shape: tuple[int, int, int], num_classes: int) -> Built:
        """The net with fresh weights (the caller seeds first)."""
        if self.arch is not None:
            return Built(self.arch.build(), self.arch, self.name, self.model)
        net = build_named(str(self.model), input_shape=input_shape, num_classes=num_classes)
        return Built(net, getattr(net, "arch", None), self.name, self.model)


def hand_designed(name: str, space: SearchSpace, input_shape: tuple[int, int, int]
                  ) -> Reference:
    """The named model at the data's input size with the space's activation (MobileNets are
    built here from their tables; other registered models as registered)."""
    kw = {"input_shape": input_shape, "num_classes": space.num_classes,
          "activation": space.activation}
    family, _, rest = name.partition("-")
    if family == "mobilenetv2":
        return Reference(name, family, mobilenetv2_arch(float(rest), **kw), name)
    if family == "mobilenetv3" and rest in BNECKS:
        return Reference(name, family, mobilenetv3_arch(rest, **kw), name)
    return Reference(name, family, None, name)


def random_references(space: SearchSpace, table: LatencyTable, searched: Arch,
                      window_ms: tuple[float, float], n: int, *, seed: int,
                      say: Callable[[str], None]) -> list[Reference]:
    """``n`` distinct nets drawn uniformly among those predicted in ``window_ms``, none of them
    the searched net (fewer, said, when the window holds fewer)."""
    if n <= 0:
        return []
    lo, hi = window_ms
    try:
        sampler = ArchSampler(space, table, target_ms=(lo + hi) / 2,
                              tolerance=(hi - lo) / (hi + lo), seed=seed)
    except UserError:
        say(f"references: no net of the space is predicted in [{lo:.3f}, {hi:.3f}] ms (the "
            "searched net's window): no random references")
        return []
    seen, out = {tuple(searched.ops)}, []
    for _ in range(50 * n):
        a = sampler.sample()
        if tuple(a.ops) not in seen:
            seen.add(tuple(a.ops))
            out.append(Reference(f"random-{len(out) + 1}", "random", a))
            if len(out) == n:
                break
    if len(out) < n:
        say(f"references: only {len(out)} distinct random nets in [{lo:.3f}, {hi:.3f}] ms")
    return out


def reference_epochs(opts: ReferenceOptions, searched_epochs: int, nets: int,
                     steps_per_epoch: int | None = None) -> int:
    """The references' training epochs: as given, else an even split of ``REFERENCE_BUDGET``
    of the searched net's ``searched_epochs`` among ``nets`` trainings (the retrained searched
    net counted), rounded down, at least one; with ``steps_per_epoch``, at least
    ``REFERENCE_MIN_STEPS`` weight steps each (never more epochs than the searched net's)."""
    if opts.epochs is not None:
        return opts.epochs
    epochs = max(1, math.floor(searched_epochs * REFERENCE_BUDGET / max(1, nets) + 1e-9))
    if steps_per_epoch:
        epochs = max(epochs, min(searched_epochs, math.ceil(REFERENCE_MIN_STEPS / steps_per_epoch)))
    return epochs


def references_stage(folder: RunFolder, space: SearchSpace, plan: "Plan", arch: Arch,
                     table: LatencyTable, table_path: Path, target_ms: float | None,
                     exported: Mapping[str, Any], searched: Mapping[str, Any]
                     ) -> dict[str, Any] | None:
    """Train, export and time the run's references (see the module) beside the searched net
    (``searched``: its metrics; ``exported``: its export.json); returns references.json
    (None when the run trains no references)."""
    opts = plan.references
    if opts is None:
        return None
    t = target_ms or predict_arch_ms(arch, table)
    window = (WINDOW[0] * t, WINDOW[1] * t)
    shape = plan.dataset.input_shape
    refs = random_references(space, table, arch, window, opts.random, seed=plan.train_cfg.seed,
                             say=plan.say)
    refs += [hand_designed(m, space, shape) for m in opts.models]
    full = plan.train_cfg.epochs or train_epochs(
        len(plan.dataset.train), plan.train_cfg.batch_size, world=plan.dist.world,
        max_steps=plan.train_cfg.max_steps)  # what the searched net's training resolves
    per_epoch = steps_per_pass(len(plan.dataset.train), plan.train_cfg.batch_size,
                               world=plan.dist.world, max_steps=plan.train_cfg.max_steps)
    cfg = replace(plan.train_cfg, epochs=reference_epochs(opts, full, len(refs) + 1, per_epoch))
    if refs and cfg.epochs != full:  # compared at equal recipe: train it again
        refs.insert(0, Reference(f"{RETRAINED}{cfg.epochs}", "retrained", arch))
    plan.say(f"references: {len(refs)} nets ({', '.join(r.name for r in refs)}) trained like "
             f"the searched net (epochs: {cfg.epochs}) -> {folder.references}")
    rows = [_reference(folder.references / r.name, r, plan, cfg, table, table_path,
                       exported["format"]) for r in refs]
    if not plan.dist.is_main:
        return None
    out = {"window": list(WINDOW), "window_ms": list(window), "target_ms": target_ms,
           "epochs": cfg.epochs, "references": rows}
    return _session(folder.references, space, plan, out, exported, searched)


def _reference(sub: Path, ref: Reference, plan: "Plan", cfg: TrainConfig, table: LatencyTable,
               table_path: Path, fmt: str) -> dict[str, Any]:
    """One reference trained (its stage skipped when done) and exported; its row."""
    key = {**options_key({**plan.train_options, "table": table_path}), **plan.stage_data,
           "epochs": cfg.epochs, "reference": ref.name,
           "arch": ref.arch.ops if ref.arch is not None else None, "model": ref.model}

    def fit(on_epoch: Callable[[int, dict[str, float]], None]) -> TrainResult:
        seed_everything(cfg.seed)  # before anything random: initial weights, data order
        built = ref.built(plan.dataset.input_shape, plan.dataset.train.num_classes)
        return train_built(built, plan.dataset, cfg, folder=sub, resume=True,
                           lut=table if ref.kind in ("random", "retrained") else None,
                           backend=plan.backend,
                           proto=plan.proto, data_label=plan.data_label,
                           progress=plan.progress, on_epoch=on_epoch, dist=plan.dist)

    m, trained = train_stage(sub, key, fit=fit, tensorboard=plan.tensorboard, say=plan.say)
    if not plan.dist.is_main:  # rank 0 exports and times
        return {"name": ref.name}
    e = export_model(sub / "model.pt", sub / "export", trained.file if trained else None,
                     fmt=fmt, data=plan.dataset, threads=plan.proto.threads,
                     rounds=plan.proto.rounds, say=plan.say, label=f"references: {ref.name}")
    return {"name": ref.name, "kind": ref.kind, "folder": ref.name, "artifact": e["path"],
            "test_accuracy": m.get("test_accuracy"), "artifact_accuracy": e.get("accuracy"),
            "latency_ms_at_export": e["latency_ms"], **({"arch": ref.arch.ops} if ref.arch else {}),
            **({"model": ref.model} if ref.model else {}),
            **{k: m[k] for k in ("predicted_latency_ms", "params", "macs", "train_wall_s", "epochs")
               if k in m}}


def _session(out: Path, space: SearchSpace, plan: "Plan", refs: dict[str, Any],
             exported: Mapping[str, Any], searched: Mapping[str, Any]) -> dict[str, Any]:
    """Every artifact timed interleaved in one session (reused when no artifact is newer and
    the nets are the same), the comparison, written to ``out/references.json``."""
    path, fmt = out / SESSION, exported["format"]
    arts = {"searched": exported["path"], **{r["name"]: r["artifact"] for r in refs["references"]}}
    logs = [Path(a).parent / "export.json" for a in arts.values()]
    old = read_json(path) if path.exists() else {}
    session = old.get("session") or {}
    if set(session.get("latencies", {})) != set(arts) or session.get("format") != fmt or \
            any(p.exists() and p.stat().st_mtime > path.stat().st_mtime for p in logs):
        session = _time(space, plan, fmt, arts)
    else:
        plan.say(f"references: timing done, reusing {path}")
    lat = session["latencies"]
    searched_row = {"name": "searched", "artifact": exported["path"],
                    "test_accuracy": searched.get("test_accuracy"),
                    "epochs": searched.get("epochs"),
                    "artifact_accuracy": exported.get("accuracy"),
                    "latency_ms_at_export": exported["latency_ms"], **lat["searched"]}
    rows = [{**r, **lat[r["name"]]} for r in refs["references"]]
    versus_ = versus(searched_row, rows, noise_floor=session.get("noise_floor"))
    result = {**refs, "references": rows, "session": session, "searched": searched_row,
              "versus": versus_}
    write_json(path, result)
    plan.say(f"references: {versus_['line']} ({path})")
    return result


def _time(space: SearchSpace, plan: "Plan", fmt: str, arts: dict[str, str]) -> dict[str, Any]:
    """The artifacts ``arts`` timed interleaved, batch 1, as export times one artifact."""
    rt = runtimes.by_format(fmt)
    rounds, threads = plan.proto.rounds, plan.proto.threads
    plan.say(f"references: timing {len(arts)} artifacts side by side ({rt.name}, {rounds} rounds, "
             f"{threads} thread(s), batch 1) ...")
    ref = reference_arch(space)
    m = time_artifacts(fmt, {k: Path(v) for k, v in arts.items()}, (1, *plan.dataset.input_shape),
                       threads=threads, rounds=rounds, warmup=WARMUP, repeats=REPEATS,
                       reference=ref.build().eval())
    first = next(iter(m.values()))
    return {"format": fmt, "runtime": rt.name, "runtime_version": rt.version(),
            "threads": threads, "batch_size": 1, "rounds": first["latency_rounds"],
            "warmup": WARMUP, "repeats": REPEATS, "stat": "p10",
            "noise_floor": first.get("noise_floor"), "reference_ms": first.get("reference_ms"),
            "reference": "the space's reference net " + " ".join(ref.ops),
            "latencies": {k: {"latency_ms": v["latency_ms"],
                              "latency_spread_ms": v["latency_spread_ms"]} for k, v in m.items()}}

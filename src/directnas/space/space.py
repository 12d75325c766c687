"""SearchSpace: stem -> fixed first block -> stages of searchable layers -> head.

A space is data (YAML, ``schema_version: 1``)::

    name: fashion-mnist
    input: {size: 28, channels: 1}
    num_classes: 10
    stem: {channels: 16, kernel: 3, stride: 2}
    first_block: {channels: 16, kernel: 3, expand: 1}    # optional
    stages:                                              # one row per stage
      - {width: 24, depth: 2, stride: 1}
    head: {channels: 512, dropout: 0.1}
    candidates: [k3_e3, k3_e6, k5_e3, k5_e6, k7_e3, k7_e6]
    allow_zero: true        # add `zero` where a layer keeps its shape (not a stage's first layer)
    skip_everywhere: false  # optional: `skip` is a candidate of every layer (identity where the
                            # shape is kept, a 1x1 projection otherwise; FBNet's op set)
    activation: relu6       # optional: the activation of stem, MBConv and head (relu6 | relu)

A stage row may override ``candidates`` for its layers.  Presets live in ``directnas/presets``.

Identity candidates.  ``zero`` removes a layer and is offered only where the layer keeps its shape
(the residual shortcut carries the input).  An identity that must exist on every layer, including
a stage's first, shape-changing one, is ``skip`` with ``skip_everywhere: true``: the identity where
the layer keeps its shape and, where it does not, a projection (conv 1x1 at the layer's stride, no
bias, + BN, no activation) to the layer's output shape.  Its latency key is
``skip:in{c}:out{c}:s{s}:hw{hw}``, so the projection is profiled like any op.  ``skip`` keeps its
place in the candidate list (e.g. first, for NAS-Bench-Macro's ``0 = identity``).

``activation`` is not part of the latency keys: ReLU and ReLU6 are one clamp fused into the conv
before them in the runtimes timed, so a key costs the same under either.  A space whose
``activation`` is the default writes no ``activation`` key, so its fingerprint is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from directnas.errors import UserError
from directnas.utils.fileio import read_yaml, write_text
from directnas.space.ops import ACTIVATIONS, DEFAULT_ACTIVATION, SKIP, ZERO, parse_op

SCHEMA_VERSION = 1
_TOP_KEYS = {"schema_version", "name", "input", "num_classes", "stem", "first_block", "stages",
             "head", "candidates", "allow_zero", "skip_everywhere", "activation"}
_KEYS = {
    "input": {"size", "channels"},
    "stem": {"channels", "kernel", "stride"},
    "first_block": {"channels", "kernel", "expand", "stride"},
    "head": {"channels", "dropout"},
    "stage": {"width", "depth", "stride", "candidates", "allow_zero"},
}


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: its shapes and its candidate ops (``zero`` included if allowed)."""

    index: int
    stage: int
    c_in: int
    c_out: int
    stride: int
    hw_in: int
    candidates: tuple[str, ...]

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.c_in == self.c_out

    @property
    def hw_out(self) -> int:
        return conv_out(self.hw_in, self.stride)


def conv_out(hw: int, stride: int) -> int:
    return (hw + stride - 1) // stride  # 'same' padding with an odd kernel


def op_key(op: str, c_in: int, c_out: int, stride: int, hw: int) -> str:
    """Latency-table key of an op at a shape, e.g. ``mbconv:k5:e6:in32:out32:s1:hw14``."""
    if op == SKIP:  # only in skip_everywhere spaces (elsewhere `skip` is read as `zero`)
        return f"skip:in{c_in}:out{c_out}:s{stride}:hw{hw}"
    spec = parse_op(op)
    if spec is None:
        return ZERO
    g = f":g{spec.groups}" if spec.groups != 1 else ""
    return f"mbconv:k{spec.kernel}:e{spec.expand}{g}:in{c_in}:out{c_out}:s{stride}:hw{hw}"


def _check_unique(cands: Any, where: str) -> None:
    """A candidate listed twice would be searched as two ops (twice its prior probability)."""
    names = [str(c) for c in cands] if isinstance(cands, list) else []
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise UserError(f"search space: {where} lists {', '.join(twice)} more than once: list "
                        "each op once")


def _check_keys(d: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise UserError(f"search space: {where} must be a mapping, got {type(d).__name__}")
    unknown = set(d) - allowed
    if unknown:
        raise UserError(
            f"search space: unknown key(s) {sorted(unknown)} in {where}; allowed: {sorted(allowed)}"
        )
    return d


def _pos_int(d: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    v = d.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise UserError(f"search space: {where}.{key} must be a positive integer, got {v!r}")
    return v


@dataclass(frozen=True)
class SearchSpace:
    name: str
    input_size: int
    input_channels: int
    num_classes: int
    stem_channels: int
    stem_kernel: int
    stem_stride: int
    first_channels: int  # 0: no fixed first block
    first_kernel: int
    first_expand: int
    first_stride: int
    stages: tuple[dict[str, Any], ...]
    head_channels: int
    head_dropout: float
    candidates: tuple[str, ...]
    allow_zero: bool
    skip_everywhere: bool = False
    activation: str = DEFAULT_ACTIVATION
    layers: tuple[LayerSpec, ...] = field(default=(), compare=False)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchSpace":
        d = _check_keys(d, _TOP_KEYS, "the top level")
        ver = d.get("schema_version", SCHEMA_VERSION)
        if ver != SCHEMA_VERSION:
            raise UserError(f"search space schema_version {ver} is not supported (expected {SCHEMA_VERSION})")
        for req in ("name", "input", "num_classes", "stem", "stages", "candidates"):
            if req not in d:
                raise UserError(f"search space: missing required key {req!r}")
        inp = _check_keys(d["input"], _KEYS["input"], "input")
        stem = _check_keys(d["stem"], _KEYS["stem"], "stem")
        first = _check_keys(d.get("first_block") or {}, _KEYS["first_block"], "first_block")
        head = _check_keys(d.get("head") or {}, _KEYS["head"], "head")
        cands = d["candidates"]
        if not isinstance(cands, list) or not cands:
            raise UserError("search space: candidates must be a non-empty list of op names")
        for c in cands:
            parse_op(str(c))
        _check_unique(cands, "candidates")
        dropout = head.get("dropout", 0.0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise UserError(f"search space: head.dropout must be a probability in [0, 1), got "
                            f"{dropout!r}: give e.g. 0.1 (0: no dropout)")
        if not isinstance(d["stages"], list) or not d["stages"]:
            raise UserError("search space: stages must be a non-empty list")
        stages = tuple(_check_keys(s, _KEYS["stage"], f"stages[{i}]") for i, s in enumerate(d["stages"]))
        skip_all = d.get("skip_everywhere", False)
        if not isinstance(skip_all, bool):
            raise UserError(f"search space: skip_everywhere must be true or false, got {skip_all!r}")
        activation = d.get("activation", DEFAULT_ACTIVATION)
        if activation not in ACTIVATIONS:
            raise UserError(f"search space: activation must be one of {', '.join(ACTIVATIONS)}, "
                            f"got {activation!r}")
        space = cls(
            name=str(d["name"]),
            input_size=_pos_int(inp, "size", "input"),
            input_channels=_pos_int(inp, "channels", "input"),
            num_classes=_pos_int(d, "num_classes", ""),
            stem_channels=_pos_int(stem, "channels", "stem"),
            stem_kernel=_pos_int(stem, "kernel", "stem", 3),
            stem_stride=_pos_int(stem, "stride", "stem", 1),
            first_channels=_pos_int(first, "channels", "first_block") if first else 0,
            first_kernel=_pos_int(first, "kernel", "first_block", 3),
            first_expand=_pos_int(first, "expand", "first_block", 1),
            first_stride=_pos_int(first, "stride", "first_block", 1),
            stages=stages,
            head_channels=int(head.get("channels", 0)),
            head_dropout=float(dropout),
            candidates=tuple(str(c) for c in cands
                             if str(c) != ZERO and (skip_all or str(c) != SKIP)),
            allow_zero=bool(d.get("allow_zero", True)) or any(
                str(c) == ZERO or (str(c) == SKIP and not skip_all) for c in cands),
            skip_everywhere=skip_all,
            activation=str(activation),
        )
        object.__setattr__(space, "layers", space._enumerate_layers())
        return space

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SearchSpace":
        d = read_yaml(path, what="search space file",
                      fix=f"give a YAML file or a preset name ({', '.join(preset_names())})")
        return cls.from_dict(d)

    def _enumerate_layers(self) -> tuple[LayerSpec, ...]:
        hw = conv_out(self.input_size, self.stem_stride)
        c = self.stem_channels
        if self.first_channels:
            hw = conv_out(hw, self.first_stride)
            c = self.first_channels
        layers: list[LayerSpec] = []
        for si, st in enumerate(self.stages):
            width = _pos_int(st, "width", f"stages[{si}]")
            depth = _pos_int(st, "depth", f"stages[{si}]")
            stride = _pos_int(st, "stride", f"stages[{si}]", 1)
            cands = st.get("candidates", list(self.candidates))
            for op in cands:
                parse_op(str(op))
            _check_unique(cands, f"stages[{si}].candidates")
            base = tuple(str(o) for o in cands if str(o) not in (ZERO, "skip"))
            if self.skip_everywhere:  # `skip` is a real op here, kept where it is listed
                base = tuple(str(o) for o in cands if str(o) != ZERO)
                base += () if SKIP in base else (SKIP,)
            zero_ok = bool(st.get("allow_zero", self.allow_zero))
            for j in range(depth):
                s = stride if j == 0 else 1
                if hw < s or hw <= 0:
                    raise UserError(
                        f"search space {self.name!r}: stage {si} stride {s} makes the {hw}x{hw} "
                        "feature map vanish; lower the strides or raise the input size")
                spec_c = base
                if zero_ok and s == 1 and c == width and j > 0:
                    spec_c = base + (ZERO,)
                if not spec_c:
                    raise UserError(
                        f"search space {self.name!r}: stage {si} layer {j} changes the shape "
                        f"({c}->{width} channels, stride {s}) so it cannot be zero, and zero is its "
                        "only candidate: add a real op (e.g. k3_e3) to the stage's candidates")
                layers.append(LayerSpec(len(layers), si, c, width, s, hw, spec_c))
                hw = conv_out(hw, s)
                c = width
        return tuple(layers)

    # ---- derived facts ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "input": {"size": self.input_size, "channels": self.input_channels},
            "num_classes": self.num_classes,
            "stem": {"channels": self.stem_channels, "kernel": self.stem_kernel, "stride": self.stem_stride},
            "stages": [dict(s) for s in self.stages],
            "head": {"channels": self.head_channels, "dropout": self.head_dropout},
            "candidates": list(self.candidates),
            "allow_zero": self.allow_zero,
        }
        if self.skip_everywhere:
            d["skip_everywhere"] = True
        if self.activation != DEFAULT_ACTIVATION:
            d["activation"] = self.activation
        if self.first_channels:
            d["first_block"] = {"channels": self.first_channels, "kernel": self.first_kernel,
                                "expand": self.first_expand, "stride": self.first_stride}
        return d

    def fingerprint(self) -> str:
        """A short hash of the space's structure (for checking tables and checkpoints)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def last_channels(self) -> int:
        return self.layers[-1].c_out if self.layers else (self.first_channels or self.stem_channels)

    @property
    def last_hw(self) -> int:
        return self.layers[-1].hw_out if self.layers else self.first_hw

    @property
    def first_hw(self) -> int:
        hw = conv_out(self.input_size, self.stem_stride)
        return conv_out(hw, self.first_stride) if self.first_channels else hw

    def fixed_keys(self) -> list[str]:
        """Latency-table keys of the layers every architecture has (stem, first block, head)."""
        hw0 = self.input_size
        keys = [f"stem:k{self.stem_kernel}:in{self.input_channels}:out{self.stem_channels}:"
                f"s{self.stem_stride}:hw{hw0}"]
        if self.first_channels:
            keys.append(op_key(f"k{self.first_kernel}_e{self.first_expand}", self.stem_channels,
                               self.first_channels, self.first_stride, conv_out(hw0, self.stem_stride)))
        keys.append(f"head:in{self.last_channels}:out{self.head_channels}:hw{self.last_hw}:"
                    f"cls{self.num_classes}")
        return keys

    def layer_keys(self, layer: LayerSpec) -> list[str]:
        return [op_key(op, layer.c_in, layer.c_out, layer.stride, layer.hw_in) for op in layer.candidates]

    def num_archs(self) -> int:
        n = 1
        for layer in self.layers:
            n *= len(layer.candidates)
        return n


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("directnas.space.presets").iterdir()
                  if p.name.endswith(".yaml"))


def save_space(space: SearchSpace, path: str | Path, *, note: str = "") -> Path:
    """``space`` as a YAML file at ``path`` (``note``: comment lines above it); ``load_space``
    reads it back to the same fingerprint."""
    head = "".join(f"# {line}\n" for line in note.splitlines())
    write_text(path, head + yaml.safe_dump(space.to_dict(), sort_keys=False,
                                           default_flow_style=None))
    return Path(path)


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A preset by name (see ``preset_names()``) or a YAML file by path."""
    s = str(name_or_path)
    if s in preset_names():
        return SearchSpace.from_dict(yaml.safe_load(
            resources.files("directnas.space.presets").joinpath(f"{s}.yaml").read_text()))
    if not (s.endswith(".yaml") or s.endswith(".yml") or Path(s).exists()):
        raise UserError(f"unknown search space {s!r}: use a preset ({', '.join(preset_names())}) or a YAML path")
    return SearchSpace.from_yaml(s)

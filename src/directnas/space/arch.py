"""Arch: one op per searchable layer of a space; JSON round trip; builds a standalone net."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from directnas.errors import UserError
from directnas.utils.fileio import read_json, write_json
from directnas.space.ops import ZERO, Head, build_op, conv_bn, parse_op
from directnas.space.space import SearchSpace, load_space

ARCH_SCHEMA_VERSION = 1


def build_fixed(space: SearchSpace, *, matmul_path: bool = True
                ) -> tuple[nn.Module, nn.Module, Head]:
    """Stem, first block (Identity if none) and head of a space (``matmul_path``: see
    ``space.depthwise``)."""
    act = space.activation
    stem = conv_bn(space.input_channels, space.stem_channels, space.stem_kernel, space.stem_stride,
                   activation=act)
    if space.first_channels:
        first: nn.Module = build_op(
            f"k{space.first_kernel}_e{space.first_expand}", space.stem_channels,
            space.first_channels, space.first_stride,
            residual=space.first_stride == 1 and space.stem_channels == space.first_channels,
            activation=act, matmul_path=matmul_path)
    else:
        first = nn.Identity()
    head = Head(space.last_channels, space.head_channels, space.num_classes, space.head_dropout,
                activation=act)
    return stem, first, head


class Net(nn.Module):
    """A standalone network: stem -> first block -> blocks -> head."""

    def __init__(self, space: SearchSpace, blocks: list[nn.Module], *,
                 matmul_path: bool = True) -> None:
        super().__init__()
        stem, first, head = build_fixed(space, matmul_path=matmul_path)
        # registered in forward order: code that walks the layers (compression: "first and last
        # layer", greedy layer-by-layer choices) relies on named_modules() following the data
        self.stem, self.first = stem, first
        self.blocks = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, classes)
        return self.head(self.blocks(self.first(self.stem(x))))


@dataclass
class Arch:
    """The chosen op of every searchable layer of ``space`` (``zero`` = layer removed)."""

    space: SearchSpace
    ops: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        layers = self.space.layers
        if len(self.ops) != len(layers):
            raise UserError(
                f"architecture has {len(self.ops)} ops but space {self.space.name!r} has "
                f"{len(layers)} searchable layers: derive it from the same space")
        for layer, op in zip(layers, self.ops):
            if op not in layer.candidates:
                raise UserError(
                    f"architecture op {op!r} at layer {layer.index} is not a candidate there "
                    f"(allowed: {', '.join(layer.candidates)}): the Arch does not fit the space")

    def build(self, *, matmul_path: bool = True) -> Net:
        """The standalone net (fresh weights); ``matmul_path=False`` keeps oneDNN's depthwise
        convolution in CPU training (``space.depthwise``)."""
        blocks = [build_op(op, l.c_in, l.c_out, l.stride, residual=l.residual,
                           activation=self.space.activation, matmul_path=matmul_path)
                  for l, op in zip(self.space.layers, self.ops) if op != ZERO]
        return Net(self.space, blocks, matmul_path=matmul_path)

    @property
    def depth(self) -> int:
        return sum(op != ZERO for op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": ARCH_SCHEMA_VERSION,
            "space": self.space.to_dict(),
            "layers": [
                {"index": l.index, "stage": l.stage, "op": op, "c_in": l.c_in, "c_out": l.c_out,
                 "stride": l.stride, "hw_in": l.hw_in}
                for l, op in zip(self.space.layers, self.ops)
            ],
            **self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Arch":
        if not isinstance(d, dict) or "layers" not in d or "space" not in d:
            raise UserError("architecture JSON must hold 'space' and 'layers' (write it with directnas search)")
        if d.get("schema_version", ARCH_SCHEMA_VERSION) != ARCH_SCHEMA_VERSION:
            raise UserError(f"architecture schema_version {d.get('schema_version')} is not supported")
        space_d = d["space"]
        space = load_space(space_d) if isinstance(space_d, str) else SearchSpace.from_dict(space_d)
        try:
            ops = [str(layer["op"]) for layer in d["layers"]]
        except (TypeError, KeyError):
            raise UserError("architecture JSON: every entry of 'layers' needs an 'op'") from None
        meta = {k: v for k, v in d.items() if k not in ("schema_version", "space", "layers")}
        return cls(space, ops, meta)

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "Arch":
        return cls.from_dict(read_json(path, what="architecture file"))

    def summary(self) -> str:
        parts = []
        for l, op in zip(self.space.layers, self.ops):
            parts.append("-" if op == ZERO else op)
        return " ".join(parts)


def uniform_arch(space: SearchSpace, op: str) -> Arch:
    """Every layer the same op (layers that cannot take it use their first candidate)."""
    parse_op(op)
    return Arch(space, [op if op in l.candidates else l.candidates[0] for l in space.layers])

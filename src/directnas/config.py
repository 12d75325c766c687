"""Config layering for every step: dataclass defaults <- one YAML file <- options (flags or
keyword arguments).  Options left as ``None`` do not override; unknown names are refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, TypeVar


from directnas.errors import UserError
from directnas.utils.fileio import read_yaml

T = TypeVar("T")


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def read_yaml_options(path: str | Path, names: set[str]) -> dict[str, Any]:
    p = Path(path)
    d = read_yaml(p, what="config file", fix="check --config") or {}
    if not isinstance(d, dict):
        raise UserError(f"config file {p} must be a mapping of option: value")
    unknown = set(d) - names
    if unknown:
        raise UserError(f"config file {p}: unknown option(s) {sorted(unknown)}; known: {sorted(names)}")
    return d


def resolve_config(cls: type[T], *, yaml_path: str | Path | None, overrides: Mapping[str, Any],
                   quick: Mapping[str, Any] | None = None, what: str = "") -> T:
    """``cls`` from its defaults, ``quick`` (a smoke budget), one YAML file and ``overrides``.

    With ``what`` (e.g. ``"training"``) an override ``cls`` does not know is a UserError (library
    keyword arguments); without it, unknown overrides are ignored (a command's flags shared by several steps)."""
    names = field_names(cls)
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - names)
    if what and unknown:
        raise UserError(f"unknown {what} option(s) {unknown}; known: {sorted(names)}")
    values: dict[str, Any] = dict(quick or {})
    if yaml_path:
        values.update(read_yaml_options(yaml_path, names))
    values.update({k: v for k, v in given.items() if k in names})
    return cls(**values)  # type: ignore[call-arg]


def check_int(value: Any, name: str, low: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UserError(f"{what} option {name} must be an integer >= {low}, got {value!r}")

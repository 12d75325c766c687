"""Flags generated from config dataclasses: each ``Flag`` names a field; its type, choices of a
bool and default come from the dataclass, its help from the ``Flag``.  A group is declared once
and added with a prefix (``run``'s ``--train-epochs``) or aliases (``train``'s older names)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Flag:
    field: str                    # the dataclass field (and the library keyword) it sets
    help: str = ""                # "(default X)" added unless the text names one or X is None/False
    name: str = ""                # the flag without "--" and prefix (default: the field, dashed)
    choices: Sequence[str] | None = None
    switch: str = "both"          # a bool: "both" (--x / --no-x), "on" (--x sets True)


def _scalar(tp: Any) -> type:
    """int, float, str or bool from an annotation such as ``int | None``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp if tp in (int, float, str, bool) else str


def dest(prefix: str, flag: Flag) -> str:
    """Where argparse keeps the flag's value: its full name with underscores."""
    return f"{prefix}{flag.name or flag.field}".replace("-", "_")


def add_flags(p: Any, cls: type, flags: Sequence[Flag], *, prefix: str = "",
              aliases: Sequence[str] = (), defaults: bool = False) -> None:
    """Add ``flags`` (fields of ``cls``) to the parser or group ``p`` as ``--<prefix><name>``
    (and ``--<alias><name>``).  Flags not given are None (the config's value holds) unless
    ``defaults``, when they take the dataclass default."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for f in flags:
        base = f.name or f.field.replace("_", "-")
        names = [f"--{prefix}{base}", *(f"--{a}{base}" for a in aliases)]
        default = fields[f.field].default
        default = None if default is dataclasses.MISSING else default
        shown = f.help if "default" in f.help or default in (None, False) else \
            f"{f.help} (default {default})".strip()
        kw: dict[str, Any] = {"dest": dest(prefix, f), "help": shown,
                              "default": default if defaults else None}
        kind = _scalar(hints[f.field])
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction if f.switch == "both" else "store_const"
            if f.switch == "on":
                kw["const"] = True
        else:
            kw.update(type=kind, choices=f.choices)
        p.add_argument(*names, **kw)


def flag_values(args: argparse.Namespace, flags: Sequence[Flag], *,
                prefix: str = "") -> dict[str, Any]:
    """The fields the flags set: ``field: value`` for every flag given."""
    values = {f.field: getattr(args, dest(prefix, f), None) for f in flags}
    return {k: v for k, v in values.items() if v is not None}


def add_out_args(p: argparse.ArgumentParser, help: str) -> None:
    """``--out`` (required) and ``--force``."""
    p.add_argument("--out", required=True, help=help)
    p.add_argument("--force", action="store_true",
                   help="write into an existing folder directnas did not make (never into "
                        "another command's folder)")


def threads_option(args: argparse.Namespace) -> dict[str, Any]:
    """``{"threads": N}`` for a search or a training when ``--threads`` was given, else ``{}``
    (their default: the usable cores; latency's: 1)."""
    return {} if getattr(args, "threads", None) is None else {"threads": args.threads}

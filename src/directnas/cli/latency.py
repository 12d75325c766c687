"""directnas latency ...: tools for latency tables and predictors.

Sub-commands live in the modules of ``SUBMODULES``; each exposes ``add_parsers(sub)`` that adds
its sub-commands (with ``set_defaults(func=...)``) to ``directnas latency``.
"""

from __future__ import annotations

import argparse
import importlib

SUBMODULES: list[str] = ["latency_tools", "latency_fit"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="inspect, import, validate and fit latency tables")
    lsub = p.add_subparsers(dest="latency_command", required=True)
    for name in SUBMODULES:
        importlib.import_module(f"directnas.cli.{name}").add_parsers(lsub)

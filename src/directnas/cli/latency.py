"""directnas latency ...: tools for latency tables and predictors, one module per sub-command
(``SUBCOMMANDS``); each exposes ``add_parser(sub)``, which adds its sub-command with
``set_defaults(func=...)`` to ``directnas latency``."""

from __future__ import annotations

import argparse
import importlib

SUBCOMMANDS: list[str] = ["show", "merge", "import", "export_ops", "validate", "fit", "evaluate",
                          "design"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="inspect, import, validate and fit latency tables")
    lsub = p.add_subparsers(dest="latency_command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"directnas.cli.latency_{name}").add_parser(lsub)

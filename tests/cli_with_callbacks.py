"""``python -m directnas ARGS`` with library callbacks that the subprocess tests pass to the search.

    python tests/cli_with_callbacks.py [--step-delay S] [--dump DIR] -- search ...

``--step-delay S``: sleep S seconds after every weight step (a slow run a test can kill);
``--dump DIR``: every rank writes its final supernet state, arch and world size to
``DIR/rank<R>.pt`` (a run under torchrun is compared across ranks).  The callbacks go to
``directnas.api.search``, the call behind the CLI's ``search``; the script fails if the
command never made that call.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from directnas import api
from directnas.cli.main import main


def run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step-delay", type=float, default=0.0)
    ap.add_argument("--dump", type=Path)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    library_search, calls = api.search, []

    def on_step(step: int) -> None:
        time.sleep(a.step_delay)

    def dump(searcher: Any, arch: Any) -> None:
        d = searcher.dist
        torch.save({"net": searcher.net.state_dict(), "ops": arch.ops, "world": d.world},
                   a.dump / f"rank{d.rank}.pt")

    def search(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if a.step_delay:
            kwargs["on_step"] = on_step
        if a.dump is not None:
            kwargs["after_search"] = dump
        return library_search(*args, **kwargs)

    api.search = search  # type: ignore[assignment]
    code = main(command)
    if not calls:
        print("cli_with_callbacks: the command did not call directnas.api.search", file=sys.stderr)
        return 3
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

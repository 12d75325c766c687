"""``python -m directnas ARGS`` with library callbacks that the subprocess tests pass to the search.

    python tests/cli_with_callbacks.py [--step-delay S] [--dump DIR] -- search ...
    python tests/cli_with_callbacks.py --step-delay S -- train ...

``--step-delay S``: sleep S seconds after every weight step of a search or every training
batch (a slow run a test can kill); ``--dump DIR``: every rank writes its final supernet state,
arch and world size to ``DIR/rank<R>.pt`` (a run under torchrun is compared across ranks).  The
callbacks go to ``directnas.api.search`` / ``directnas.api.train``, the calls behind the CLI's
``search`` and ``train``; the script fails if the command made neither call.
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

    library_train = api.train

    def train(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        shown = kwargs.get("progress")

        def slow(it: Any, desc: str, total: int) -> Any:
            for item in (shown(it, desc, total) if shown else it):
                yield item
                time.sleep(a.step_delay)

        if a.step_delay:
            kwargs["progress"] = slow
        return library_train(*args, **kwargs)

    api.search = search  # type: ignore[assignment]
    api.train = train  # type: ignore[assignment]
    code = main(command)
    if not calls:
        print("cli_with_callbacks: the command called neither directnas.api.search nor "
              "directnas.api.train", file=sys.stderr)
        return 3
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

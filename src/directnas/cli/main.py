"""The directnas command line: ``main(argv=None) -> int``; every command only calls the library."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from directnas import __version__
from directnas.errors import UserError
from directnas.utils.fileio import os_error

COMMANDS = ["profile", "search", "train", "latency", "run", "baselines", "report", "compress", "random_search", "export"]


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error, and exit with 2."""

    def error(self, message: str) -> NoReturn:
        print(f"directnas: error: {message}: see '{self.prog} --help'", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="directnas", description=__doc__)
    p.add_argument("--version", action="version", version=f"directnas {__version__}")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"directnas.cli.{name}").add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from directnas.cli.data_flags import apply_data_options

    parser = build_parser()
    try:
        args = apply_data_options(parser.parse_args(argv))
    except SystemExit as e:  # --help, --version or a usage error (printed in one line)
        return int(e.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        force=True)
    # torchao (under ExecuTorch's quantizer) logs its optional CUDA kernels' absence at import on
    # every CPU machine; a user needs none of it
    # torch itself warns (once per process) when torchao registers an Enum as a pytree constant
    for noisy in ("torchao", "torchao.kernel.intmm", "torch.utils._pytree"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"directnas: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a write no library call turned into a UserError: disk full, read-only
        print(f"directnas: error: {os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("directnas: interrupted; re-run with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

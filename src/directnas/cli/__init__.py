"""The command line: one module per command; ``main(argv) -> int``."""
from directnas.cli.main import main

__all__ = ["main"]

"""``--data`` and ``--skip-bad-images``, shared by the commands that read a dataset."""

from __future__ import annotations

import argparse

from directnas.data.readers import DataPath

SKIP_HELP = "skip unreadable images of an image folder (counted in one line) instead of stopping"


def add_data_args(p: argparse.ArgumentParser,
                  help: str = "'fashion-mnist' or a dataset folder") -> None:
    p.add_argument("--data", default="fashion-mnist", help=help)
    p.add_argument("--skip-bad-images", action="store_true", help=SKIP_HELP)


def apply_data_options(args: argparse.Namespace) -> argparse.Namespace:
    """``--data`` as a ``DataPath`` that carries ``--skip-bad-images`` (when given)."""
    if getattr(args, "skip_bad_images", False) and getattr(args, "data", None):
        args.data = DataPath(args.data, skip_bad_images=True)
    return args

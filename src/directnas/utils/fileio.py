"""Atomic writes: every output goes to a temp file in the same folder, then is renamed."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from directnas.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# outputs are readable like any file the user writes (a temp file alone would be 0600)
FILE_MODE = 0o666 & ~_umask()


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    def w(tmp: Path) -> None:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")

    _atomic(Path(path), w)


def write_text(path: str | Path, text: str) -> None:
    _atomic(Path(path), lambda tmp: tmp.write_text(text))


def write_bytes(path: str | Path, data: bytes) -> None:
    _atomic(Path(path), lambda tmp: tmp.write_bytes(data))


def torch_save(path: str | Path, obj: Any) -> None:
    import torch

    _atomic(Path(path), lambda tmp: torch.save(obj, tmp))


def torch_load(path: str | Path, *, what: str = "checkpoint", weights_only: bool = True) -> Any:
    """Load a file written by ``torch_save``; any failure is one UserError line.

    ``weights_only`` (the default) refuses pickled code: a foreign file cannot run anything.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist: give the path of a .pt file written by directnas")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise UserError(
            f"{what} {path} is corrupt, truncated or not written by directnas ({type(e).__name__}): "
            "delete it (or move it away) and re-run without --resume"
        ) from None


def remove_stale_temps(folder: str | Path) -> int:
    """Delete temp files that a killed process left behind in ``folder``; returns how many."""
    n = 0
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


def read_json(path: str | Path, *, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist: check the path")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON ({e}): regenerate it") from None


def read_yaml(path: str | Path, *, what: str = "YAML file", fix: str = "check the path") -> Any:
    """A YAML file's content; a missing or malformed file is one UserError line
    (``what`` names the file's role, ``fix`` says what to do when it is missing)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist: {fix}")
    try:
        return yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}") from None

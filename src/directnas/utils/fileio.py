"""Atomic writes: every output goes to a temp file in the same folder, then is renamed; an
``OSError`` on the way (disk full, read-only filesystem, no permission) is one ``UserError``
line naming the path, what the error means and what to do (``os_error``)."""

from __future__ import annotations

import errno
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


# what an errno means for a file directnas writes, and what the user can do about it
_FIXES = {
    errno.ENOSPC: ("the disk is full", "free disk space or choose another --out"),
    errno.EDQUOT: ("the disk quota is exceeded", "free disk space or choose another --out"),
    errno.EROFS: ("the filesystem is read-only", "choose an --out on a writable filesystem"),
    errno.EACCES: ("permission denied", "fix its permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "fix its permissions or choose another path"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose another path"),
    errno.EISDIR: ("it is a folder, not a file", "give a file path"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EIO: ("an input/output error (a failing disk?)", "check the disk or choose another path"),
}


def os_error(e: OSError, path: str | Path | None = None, *, action: str = "") -> UserError:
    """``e`` as one line: ``action`` (e.g. "cannot write"), the path, what the errno means (its
    name) and the fix."""
    where = str(path or e.filename or "a file")
    meaning, fix = _FIXES.get(e.errno or -1, (e.strerror or str(e), "check the path and the disk"))
    name = errno.errorcode.get(e.errno or -1, "")
    return UserError(f"{action + ' ' if action else ''}{where}: {meaning}"
                     f"{f' ({name})' if name else ''}: {fix}")


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise os_error(e, path, action="cannot write") from None
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
    """``torch.save`` atomically; serialised in memory first, so a full disk is an ``OSError``
    of the write (torch's own file writer reports it as a RuntimeError without an errno)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    _atomic(Path(path), lambda tmp: tmp.write_bytes(buf.getbuffer()))


def torch_load(path: str | Path, *, what: str = "checkpoint", weights_only: bool = True) -> Any:
    """Load a file written by ``torch_save``; any failure is one UserError line.

    ``weights_only`` (the default) refuses pickled code: a foreign file cannot run anything.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist: give the path of a .pt file written by directnas")
    try:
        # TorchVersion (a str) is in tables' metadata that older versions saved unconverted
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
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
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is a binary file, not JSON text: give the JSON file") from None
    except json.JSONDecodeError as e:
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
    except UnicodeDecodeError:
        raise UserError(f"{what} {path} is a binary file, not YAML text: give the YAML file") from None
    except yaml.YAMLError as e:
        raise UserError(f"{what} {path} is not valid YAML: {str(e).splitlines()[0]}") from None

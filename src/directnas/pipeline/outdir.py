"""Output folders: a command writes only into a folder it made (or an empty one), and one process
at a time.

``check_out`` runs with the other checks, before any work, and writes nothing: ``--out`` must be
a folder (not a file, not under a file) on a writable filesystem, must not hold the command's
input, and if it exists and holds files it must be a run folder of the same command (``--force``
writes into any other folder that is no run folder of another command).  ``claimed`` then makes
the folder, marks it as the command's (``.directnas``: a small JSON naming the command) and holds
a lock on it (``.directnas.lock``: ``fcntl.flock``, released by the OS when the process ends, so
a lock left by a killed process is free) while the command writes; a second process on the same
folder is refused with one line naming the first one's pid and command.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from directnas.errors import UserError
from directnas.utils.fileio import os_error, write_json

MARKER = ".directnas"
LOCK = ".directnas.lock"
# the files by which a folder written before markers existed names the command that wrote it
EARLIER = {"run": ("latency_stage.json",),
           "search": ("search_config.json", "search_checkpoint.pt"),
           "train": ("train_config.json", "train_checkpoint.pt", "stage.json"),
           "compress": ("compress_config.json",),
           "export": ("export.json",),
           "baselines": ("baselines.json",),
           "random-search": ("random_search_config.json",),
           "report": ("report.json",)}


def folder_command(folder: Path) -> str | None:
    """The command whose run folder ``folder`` is: its marker's, else the one whose own files
    it holds (folders written before markers existed), else None."""
    marker = folder / MARKER
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text())["command"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return next((c for c, files in EARLIER.items() if any((folder / f).exists() for f in files)),
                None)


def _writable_parent(out: Path) -> Path:
    """The nearest existing folder at or above ``out``; UserError if a file stands in the way."""
    for p in (out, *out.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                where = "is a file" if p == out else f"lies under the file {p}"
                raise UserError(f"--out {out} {where}, not a folder: give a folder path")
            return p
    return Path.cwd()


def check_writable(out: Path) -> None:
    """``out`` (a folder, made or not) can be written: no file in the way, its nearest existing
    folder writable and not on a read-only filesystem.  Writes nothing."""
    _check_base(out, _writable_parent(out))


def check_out_file(path: str | Path) -> None:
    """A file ``--out`` can be written: not a folder, not under a file, in a writable folder on
    a writable filesystem.  Writes nothing."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--out {path} is a folder: give a file path (e.g. {path / 'out.json'})")
    base = next((p for p in path.parents if p.exists()), Path.cwd())
    if not base.is_dir():
        raise UserError(f"--out {path} lies under the file {base}: give a path in a folder")
    _check_base(path, base)


def _check_base(out: Path, base: Path) -> None:
    if os.statvfs(base).f_flag & os.ST_RDONLY:
        raise UserError(f"--out {out}: {base} is on a read-only filesystem (EROFS): choose an "
                        "--out on a writable filesystem")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {base} is not writable (permission denied, EACCES): "
                        "choose a folder you may write to (or fix its permissions)")


def check_out(out: str | Path, command: str, *, force: bool = False,
              inputs: Iterable[str | Path | None] = ()) -> None:
    """Everything about ``--out`` that can be checked before any work, writing nothing."""
    out = Path(out)
    check_writable(out)
    for given in inputs:
        if given is not None and _within(Path(given), out):
            raise UserError(f"--out {out} holds the input {given}, which {command} would "
                            f"overwrite: choose another --out (e.g. {out / command})")
    if not out.is_dir():
        return
    owner = folder_command(out)
    if owner is not None and owner != command:
        raise UserError(f"--out {out} is a folder of 'directnas {owner}', not of '{command}': "
                        "choose another --out")
    if owner is None and not force:
        held = sorted(p.name for p in out.iterdir() if p.name not in (MARKER, LOCK))
        if held:
            shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            raise UserError(f"--out {out} exists and holds files directnas did not write "
                            f"({shown}): choose a new or empty --out, or pass --force to write "
                            "into it")
    holder = _holder(out)
    if holder is not None:
        raise _busy(out, holder)


def _within(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def _holder(folder: Path) -> str | None:
    """Who holds the folder's lock now ("pid N, directnas CMD"), or None when it is free."""
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    finally:
        os.close(fd)


def _busy(folder: Path, holder: str) -> UserError:
    return UserError(f"--out {folder} is in use by another directnas process ({holder}): wait "
                     "for it to end or choose another --out")


@contextmanager
def claimed(out: str | Path, command: str, *, active: bool = True) -> Iterator[Path]:
    """``out`` made, marked as ``command``'s and locked against other processes while the
    block runs (the lock is released when it ends, or by the OS when the process dies; the
    lock file is emptied again on the way out).  Not ``active`` (a rank other than 0, or no
    folder of the user's): the block runs as it is."""
    out = Path(out)
    if not active:
        yield out
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise os_error(e, out, action="cannot write") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out, os.pread(fd, 200, 0).decode(errors="replace").strip()
                        or "another process") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, directnas {command}\n".encode(), 0)
        if not (out / MARKER).is_file():
            write_json(out / MARKER, {"command": command})
        try:
            yield out
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)

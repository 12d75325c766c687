"""Image files decoded once: decoded and resized in parallel (a process pool over the usable
cores, files in chunks) into one uint8 array (N, C, H, W) saved as ``.npy`` under
``<cache>/data/``, keyed by the files (relative paths, sizes and mtimes, hashed), their labels
and the size, and opened memory-mapped by every later load of the same files at the same size.

An entry is written in a temp folder and renamed into place when complete: an interrupted
decode leaves no entry behind.  Memory use while decoding is a chunk per process: the array is
written to its file as the chunks come back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import re
import shutil
import signal
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from directnas.data.datasets import pixel_sums
from directnas.errors import UserError

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # bump when the decoded pixels of the same files change
CHUNK = 256  # most files per task of the process pool
ImageFile = tuple[str, int, int]  # (path, label, part): part 0 train, 1 test


@dataclass
class DecodedImages:
    """Decoded images (N, C, H, W) uint8 memory-mapped from the cache, their labels and parts
    (in the files' order, less the skipped ones); ``from_cache``: opened without decoding."""

    images: torch.Tensor
    labels: torch.Tensor
    parts: np.ndarray
    sums: np.ndarray  # (N, 2, C) int64: per image, ``datasets.pixel_sums``
    skipped: list[tuple[str, str]]  # (path relative to the folder, reason)
    entry: Path
    from_cache: bool
    converted: int = 0  # grayscale images read as RGB (the folder mixes grayscale and colour)


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def data_cache_dir() -> Path:
    """``<cache>/data``: where decoded image folders are kept (``DIRECTNAS_CACHE`` overrides)."""
    from directnas.latency.cache import cache_dir

    return cache_dir() / "data"


def folder_key(root: Path, files: Sequence[ImageFile], size: int | None) -> str:
    """A digest of every file's relative path, size and mtime, its label and part, and ``size``."""
    h = hashlib.sha256(f"directnas-decoded v{CACHE_VERSION} size={size}\n".encode())
    rows = []
    for path, label, part in files:
        try:
            st = os.stat(path)
        except OSError as e:  # removed since the folder was listed, or unreadable
            raise bad_image(path, e.strerror or str(e)) from None
        rows.append(f"{_relative(root, path)}\t{label}\t{part}\t{st.st_size}\t{st.st_mtime_ns}\n")
    h.update("".join(rows).encode())
    return h.hexdigest()


def _relative(root: Path, path: str) -> str:
    """``path`` relative to ``root`` (a prefix cut for the paths listed under ``root``)."""
    prefix = f"{root}{os.sep}"
    return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)


def entry_path(root: Path, key: str, size: int | None) -> Path:
    """The cache folder of ``root``'s files at ``size`` with digest ``key``."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", root.resolve().name or "root")[:40]
    return data_cache_dir() / f"{name}-{size or 'own'}px-{key[:24]}"


def bad_image(path: Path | str, reason: str) -> UserError:
    """The one-line error for an image that cannot be decoded."""
    return UserError(f"image {path} cannot be read ({reason}): remove it or pass --skip-bad-images")


# ---- decoding (runs in the pool's processes) ------------------------------------------------
def _reason(e: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(e, UnidentifiedImageError):
        return "not an image file Pillow recognises"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


GREY_MODES = ("1", "L", "LA", "I", "I;16")


def decode_image(path: Path | str, mode: str | None, size: int | None,
                 native: list[str] | None = None) -> np.ndarray:
    """One image as (H, W, C) uint8 in ``mode`` (None: L for grey images, else RGB), resized
    to ``size`` x ``size`` (bilinear) when given; ``native`` gets the mode it was stored in
    (L or RGB)."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        own = "L" if im.mode in GREY_MODES else "RGB"
        if native is not None:
            native.append(own)
        im = im.convert(mode or own)
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        a = np.asarray(im)
    return a if a.ndim == 3 else a[:, :, None]


def _decode_chunk(job: tuple[list[str], str, int | None, tuple[int, ...]]
                  ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]:
    """Decodes a chunk of files: (the readable ones as (k, C, H, W), their ``pixel_sums``,
    [(index in the chunk, kind 'bad', 'shape' or 'mode', reason)] for the others and, kind
    'mode', for the images stored in another mode than ``mode`` (converted, kept))."""
    paths, mode, size, shape = job
    out, problems = [], []
    for i, p in enumerate(paths):
        native: list[str] = []
        try:
            a = decode_image(p, mode, size, native)
        except Exception as e:  # noqa: BLE001 - whatever Pillow raises, the file is unreadable
            problems.append((i, "bad", _reason(e)))
            continue
        if a.shape != shape:
            problems.append((i, "shape", f"{a.shape}"))
            continue
        if native[0] != mode:
            problems.append((i, "mode", native[0]))
        out.append(a)
    arr = np.stack(out) if out else np.zeros((0, *shape), np.uint8)
    arr = np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    return arr, pixel_sums(arr), problems


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which ends the pool


def _chunks(paths: list[str], mode: str, size: int | None, shape: tuple[int, ...],
            workers: int) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[int, str, str]]]]:
    """The decoded chunks in file order, from a pool of ``workers`` processes (1: here).  If a
    process of the pool dies (e.g. killed for memory), the rest is decoded here."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    step = max(1, min(CHUNK, -(-len(paths) // (4 * workers))))
    jobs = [(paths[i:i + step], mode, size, shape) for i in range(0, len(paths), step)]
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_decode_chunk, jobs)
        return
    # fork, as DataLoader workers do: spawn would re-run a caller's unguarded script
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=ctx, initializer=_ignore_sigint)
    done = 0
    try:
        for result in pool.map(_decode_chunk, jobs):
            yield result
            done += 1
    except BrokenProcessPool:
        log.warning("a decoding process died; decoding the remaining %d images in this process",
                    sum(len(j[0]) for j in jobs[done:]))
        yield from map(_decode_chunk, jobs[done:])
    finally:  # on an error or Ctrl-C: drop the queued chunks, do not wait for them
        pool.shutdown(wait=False, cancel_futures=True)


# ---- the cache entry ------------------------------------------------------------------------
def _first_image(root: Path, files: Sequence[ImageFile], size: int | None,
                 skip_bad_images: bool, mode: str | None = None) -> tuple[str, tuple[int, ...]]:
    """The mode (``mode``, else the first readable image's) and the (H, W, C) shape of the
    first readable image in it: every image takes them."""
    for path, _, _ in files:
        try:
            a = decode_image(path, mode, size)
        except Exception as e:  # noqa: BLE001
            if not skip_bad_images:
                raise bad_image(path, _reason(e)) from None
            continue
        return mode or ("L" if a.shape[2] == 1 else "RGB"), a.shape
    raise UserError(f"image folder {root}: none of its {len(files)} images can be read")


class _ColourInGrey(Exception):
    """A colour image in a folder read as grayscale (its first image is grey)."""


def _progress(total: int, desc: str):  # noqa: ANN202 - a tqdm bar
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True,
                disable=bool(os.environ.get("DIRECTNAS_NO_PROGRESS")))


def _decode_into(tmp: Path, root: Path, files: Sequence[ImageFile], size: int | None,
                 skip_bad_images: bool, workers: int
                 ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]], int]:
    """Decodes ``files`` into ``tmp/images.npy``; (the mask of files kept, their
    ``pixel_sums``, skipped files, how many were converted to RGB).  A folder of grayscale and
    colour images is read as RGB (the grey images converted), whichever comes first."""
    try:
        return _decode_as(tmp, root, files, size, skip_bad_images, workers, None)
    except _ColourInGrey:
        return _decode_as(tmp, root, files, size, skip_bad_images, workers, "RGB")


def _decode_as(tmp: Path, root: Path, files: Sequence[ImageFile], size: int | None,
               skip_bad_images: bool, workers: int, mode: str | None
               ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]], int]:
    """``_decode_into`` in ``mode`` (None: the first image's)."""
    mode, shape = _first_image(root, files, size, skip_bad_images, mode)
    out = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                    shape=(len(files), shape[2], shape[0], shape[1]))
    _reserve(tmp / "images.npy")
    keep = np.ones(len(files), dtype=bool)
    sums = np.zeros((len(files), 2, shape[2]), np.int64)
    skipped: list[tuple[str, str]] = []
    done = written = converted = 0
    chunks = _chunks([f[0] for f in files], mode, size, shape, workers)
    with closing(chunks), _progress(len(files), f"decoding {root.name}") as bar:
        for arr, chunk_sums, problems in chunks:
            converted += sum(kind == "mode" for _, kind, _ in problems)
            if converted and mode == "L":
                raise _ColourInGrey()
            problems = [p for p in problems if p[1] != "mode"]
            for i, kind, reason in problems:
                path = files[done + i][0]
                if kind == "shape":
                    raise UserError(f"image {path} has shape {reason}, others {shape}: resize all "
                                    "images to one size or pass --input-size")
                if not skip_bad_images:
                    raise bad_image(path, reason)
                keep[done + i] = False
                skipped.append((_relative(root, path), reason))
            out[written:written + len(arr)] = arr
            sums[written:written + len(arr)] = chunk_sums
            written += len(arr)
            done += len(arr) + len(problems)
            bar.update(len(arr) + len(problems))
    out.flush()
    del out
    if skipped:
        _truncate(tmp / "images.npy", written)
    return keep, sums[:written], skipped, converted


def _reserve(path: Path) -> None:
    """Allocates the file's blocks now: a full disk fails here with an OSError rather than
    with a bus error while the pages are written through the map."""
    if hasattr(os, "posix_fallocate"):
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
        finally:
            os.close(fd)


def _truncate(path: Path, n: int) -> None:
    """Keeps the first ``n`` images of the ``.npy`` at ``path`` (a copy, chunk by chunk)."""
    src = np.load(path, mmap_mode="r")
    dst = np.lib.format.open_memmap(path.with_suffix(".part.npy"), mode="w+", dtype=np.uint8,
                                    shape=(n, *src.shape[1:]))
    _reserve(path.with_suffix(".part.npy"))
    for i in range(0, n, 4096):
        dst[i:i + 4096] = src[i:min(n, i + 4096)]
    dst.flush()
    del src, dst
    os.replace(path.with_suffix(".part.npy"), path)


def _remove_stale_temps(entry: Path) -> None:
    """Deletes temp folders of ``entry`` whose writing process is gone (killed mid-decode)."""
    for tmp in entry.parent.glob(f".{entry.name}.tmp-*"):
        try:
            os.kill(int(tmp.name.rsplit("-", 1)[1]), 0)
        except (ProcessLookupError, ValueError):
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


def _write_entry(entry: Path, root: Path, files: Sequence[ImageFile], size: int | None,
                 skip_bad_images: bool, workers: int) -> None:
    """Decodes ``files`` into a temp folder and renames it to ``entry`` (atomic)."""
    made = [p for p in (entry.parent, *entry.parent.parents) if not p.exists()]
    entry.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(entry)
    tmp = entry.parent / f".{entry.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        keep, sums, skipped, converted = _decode_into(tmp, root, files, size, skip_bad_images,
                                                      workers)
        np.save(tmp / "sums.npy", sums)
        np.save(tmp / "labels.npy", np.array([f[1] for f in files], np.int64)[keep])
        np.save(tmp / "parts.npy", np.array([f[2] for f in files], np.uint8)[keep])
        meta = {"version": CACHE_VERSION, "folder": str(root.resolve()), "size": size,
                "count": int(keep.sum()), "skipped": skipped, "converted_to_rgb": converted}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        try:
            os.rename(tmp, entry)
        except OSError:  # another process wrote the same entry meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for p in made:  # the cache folders this call made, innermost first: a failure leaves none
            try:
                p.rmdir()
            except OSError:
                break
        raise


def _remove_superseded(entry: Path, root: Path) -> None:
    """Deletes the other entries of ``root`` at the same size (its files have changed since)."""
    folder = str(root.resolve())
    for other in entry.parent.glob(f"{entry.name[:-24]}*"):
        try:
            same = json.loads((other / "meta.json").read_text()).get("folder") == folder
        except (OSError, ValueError):
            continue
        if other != entry and same:
            shutil.rmtree(other, ignore_errors=True)  # a process that has it mapped keeps it


def _open_entry(entry: Path, from_cache: bool) -> DecodedImages | None:
    """The entry memory-mapped (copy-on-write: writable, the file is never changed); None
    when it is missing or unreadable."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        images = np.load(entry / "images.npy", mmap_mode="c")
        labels = np.load(entry / "labels.npy")
        parts = np.load(entry / "parts.npy")
        sums = np.load(entry / "sums.npy")
    except (OSError, ValueError):
        return None
    if meta.get("version") != CACHE_VERSION or images.ndim != 4 or not \
            len(images) == len(labels) == len(parts) == len(sums) == meta.get("count"):
        return None
    return DecodedImages(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)),
                         parts, sums, [tuple(s) for s in meta.get("skipped", [])], entry,
                         from_cache, int(meta.get("converted_to_rgb", 0)))


def decode_folder(root: Path, files: Sequence[ImageFile], *, size: int | None = None,
                  skip_bad_images: bool = False, workers: int | None = None) -> DecodedImages:
    """``files`` of the folder ``root`` decoded (mode of the first readable image; resized to
    ``size`` x ``size`` when given): from the cache when it holds them, else decoded on
    ``workers`` processes (default: the usable cores) and cached.

    An unreadable image stops with one line naming it; with ``skip_bad_images`` it is left out
    and counted in one line.
    """
    entry = entry_path(root, folder_key(root, files, size), size)
    found = _open_entry(entry, True)
    if found is None:
        if entry.exists():
            log.warning("decoded cache %s is unreadable: decoding again", entry)
            shutil.rmtree(entry, ignore_errors=True)
        n = workers or usable_cores()
        start = time.perf_counter()
        try:
            _write_entry(entry, root, files, size, skip_bad_images, n)
        except OSError as e:
            raise UserError(f"cannot write the decoded images of {root} to {entry.parent} "
                            f"({e.strerror or e}): free disk space or set DIRECTNAS_CACHE to a "
                            "writable folder") from None
        _remove_superseded(entry, root)
        found = _open_entry(entry, False)
        if found is None:
            raise UserError(f"decoded cache {entry} cannot be read back: check the disk "
                            "(DIRECTNAS_CACHE sets where the cache is)")
        log.info("decoded %d images of %s%s in %.1f s on %d process%s into %s", len(files), root,
                 f" at {size}x{size}" if size else "", time.perf_counter() - start, n,
                 "es" if n > 1 else "", entry)
    else:
        log.info("using decoded cache %s (%d images of %s)", entry, len(found.labels), root)
    if found.converted:
        log.warning("image folder %s mixes grayscale and colour images: its %d grayscale image(s) "
                    "are read as RGB (3 channels)", root, found.converted)
    if found.skipped:
        if not skip_bad_images:
            raise bad_image(root / found.skipped[0][0], found.skipped[0][1])
        log.warning("skipped %d unreadable image%s of %s (first: %s)", len(found.skipped),
                    "s" if len(found.skipped) > 1 else "", root, found.skipped[0][0])
    return found

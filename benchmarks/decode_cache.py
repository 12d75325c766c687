"""Image folders decoded once: the first load of a folder (decoded on every usable core into
the cache) against the second (the memory-mapped cache), each in a fresh process with an empty
``DIRECTNAS_CACHE``, up to the first training batch (``as_dataset`` at the size, the validation
split, one augmented batch): what a run does before its search starts.

    python benchmarks/decode_cache.py DIR [--size 32] [--one-process]

``DIR``: an image folder, e.g. CIFAR-10 unpacked from ``../shared/data/cifar10/``
(``tar xzf ../shared/data/cifar10/cifar10-jpeg.tar.gz -C /tmp/cifar10``).  ``--one-process``
also times a decode on one process (no pool), in a third empty cache.  Prints one line per load
and the ratio second / first; the process's anonymous memory after an epoch of batches shows
that the images are not copied into memory (they stay in the mapped file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from directnas.data.datasets import Batches, split_train_valid
from directnas.data.readers.image_folder import read_image_folder
from directnas.data.sources import as_dataset
from pathlib import Path
t_import = time.perf_counter() - t0
root, size, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
if workers == "auto":
    ds = as_dataset(root, size=size)
else:
    ds = as_dataset(read_image_folder(Path(root), size=size, workers=int(workers)), size=size)
train, valid = split_train_valid(ds.train, valid_size=min(5000, len(ds.train) // 10), seed=0)
batches = Batches(train, batch_size=256, mean=ds.mean, std=ds.std, augment=True)
next(iter(batches))
t_ready = time.perf_counter() - t0
for _ in batches:
    pass
status = dict(l.split(":", 1) for l in open("/proc/self/status"))
print(json.dumps({"import_s": t_import, "ready_s": t_ready, "train": len(train),
                  "valid": len(valid), "test": len(ds.test), "mapped": ds.train.mapped,
                  "rss_anon_mb": int(status["RssAnon"].split()[0]) // 1024,
                  "rss_file_mb": int(status["RssFile"].split()[0]) // 1024}))
"""


def load(root: str, size: int, cache: str, workers: str) -> dict:
    env = {**os.environ, "DIRECTNAS_CACHE": cache, "DIRECTNAS_NO_PROGRESS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, root, str(size), workers], env=env,
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    r["process_s"] = time.perf_counter() - t0
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--one-process", action="store_true", help="also time a one-process decode")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="decode-cache-") as tmp:
        cache = os.path.join(tmp, "cache")
        rows = [("first (decode, all cores)", load(a.folder, a.size, cache, "auto")),
                ("second (cache)", load(a.folder, a.size, cache, "auto"))]
        if a.one_process:
            rows.append(("decode on one process", load(a.folder, a.size, os.path.join(tmp, "c1"),
                                                       "1")))
    for name, r in rows:
        print(f"{name:27s} data ready in {r['ready_s']:7.2f} s (imports {r['import_s']:.1f} s; "
              f"{r['train']} train / {r['valid']} valid / {r['test']} test, mapped "
              f"{r['mapped']}; after an epoch: anonymous memory {r['rss_anon_mb']} MB, "
              f"mapped file {r['rss_file_mb']} MB)")
    first, second = rows[0][1]["ready_s"], rows[1][1]["ready_s"]
    print(f"second / first: {second / first:.1%}  (cores: {len(os.sched_getaffinity(0))})")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Measure a directnas op bundle on this device (numpy + onnxruntime only; no torch, no directnas).

On the machine with directnas:
    directnas latency export-ops --space fashion-mnist --out ops_bundle
Copy ``ops_bundle/`` and this script to the device (phone with Python, Raspberry Pi, server), then:
    pip install numpy onnxruntime
    python3 ondevice_profile.py ops_bundle --threads 1 --out device.json
Back on the directnas machine:
    directnas latency import --format ondevice device.json --space fashion-mnist \
        --out device_table.json

Protocol, the same as ``directnas profile``: fixed intra-op threads, ``--warmup`` untimed runs,
``--repeats`` timed runs, the median (and the inter-quartile spread) per op.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

OUTPUT_FORMAT = "directnas-ondevice"
BUNDLE_FORMAT = "directnas-ops"


def device_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_session(ort, path: Path, threads: int):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def time_op(sess, feed: dict, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="folder written by 'directnas latency export-ops'")
    p.add_argument("--out", required=True, help="JSON results to write")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs per op (default 10)")
    p.add_argument("--repeats", type=int, default=50,
                   help="timed runs per op; the median is kept (default 50)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        print("error: --threads and --repeats must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(f"error: {e.name} is missing: pip install numpy onnxruntime", file=sys.stderr)
        return 2
    bundle = Path(args.bundle)
    try:
        manifest = json.loads((bundle / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"error: cannot read {bundle / 'manifest.json'} ({e}): export it with "
              "'directnas latency export-ops'", file=sys.stderr)
        return 2
    if manifest.get("format") != BUNDLE_FORMAT:
        print(f"error: {bundle} is not a directnas op bundle", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    results = {}
    ops = manifest["ops"]
    for i, op in enumerate(ops):
        sess = make_session(ort, bundle / op["file"], args.threads)
        x = rng.standard_normal(op["input_shape"]).astype(np.float32)
        times = np.array(time_op(sess, {op["input_name"]: x}, args.warmup, args.repeats))
        q1, med, q3 = np.percentile(times, [25, 50, 75])
        results[op["key"]] = {"ms": float(med), "spread_ms": float(q3 - q1)}
        print(f"[{i + 1}/{len(ops)}] {op['key']}: {med:.3f} ms", file=sys.stderr)
    meta = {"device": device_name(), "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "onnxruntime": ort.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "threads": args.threads,
            "batch_size": manifest.get("batch_size", 1), "dtype": manifest.get("dtype", "float32"),
            "warmup": args.warmup, "repeats": args.repeats, "space": manifest.get("space"),
            "space_fingerprint": manifest.get("space_fingerprint"),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps({"format": OUTPUT_FORMAT, "version": 1, "meta": meta,
                               "results": results}, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"{len(results)} ops measured -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

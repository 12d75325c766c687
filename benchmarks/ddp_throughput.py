"""Images/s of the search step (weight step + alpha step) for 1 vs N processes under torchrun.

    nice -n 15 python benchmarks/ddp_throughput.py --procs 1 2 --steps 30 --json out.json

Each process uses 1 thread and a per-process batch of ``--batch-size`` (weak scaling: the
global batch is batch_size * processes, as with DistributedDataParallel).  The parent launches
``python -m torch.distributed.run --standalone --nproc-per-node N`` on this same file; rank 0
of every job writes its timing, the parent prints a table and writes one JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args: argparse.Namespace) -> None:
    import torch

    from directnas.data.readers import load_dataset
    from directnas.utils.distributed import init_from_env
    from directnas.nas.searcher import SearchConfig, Searcher
    from directnas.utils.seeding import seed_everything
    from directnas.space.space import load_space

    torch.set_num_threads(1)
    dist = init_from_env()
    space, data = load_space(args.space), load_dataset(args.data)
    cfg = SearchConfig(warmup_epochs=0, epochs=1, batch_size=args.batch_size, threads=1,
                       arch_every=1, max_steps=args.warmup_steps + args.steps,
                       valid_size=2000, seed=0)
    with tempfile.TemporaryDirectory() as out:
        seed_everything(cfg.seed)  # as directnas.search does at its entry
        searcher = Searcher(space, data, None, cfg, out, dist=dist)
        marks: dict[int, float] = {}

        def on_step(step: int) -> None:
            if step in (args.warmup_steps, args.warmup_steps + args.steps):
                dist.barrier()
                marks[step] = time.perf_counter()

        searcher.run(on_step=on_step)
    seconds = marks[args.warmup_steps + args.steps] - marks[args.warmup_steps]
    if dist.is_main:
        images = args.steps * args.batch_size * dist.world  # train images; as many valid ones
        Path(args.result).write_text(json.dumps({
            "processes": dist.world, "backend": dist.backend or "none",
            "batch_size_per_process": args.batch_size, "steps": args.steps,
            "seconds": seconds, "images_per_s": images / seconds,
            "step_ms": 1e3 * seconds / args.steps}))


def launch(args: argparse.Namespace) -> None:
    rows = []
    for n in args.procs:
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "r.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={n}", __file__, "--worker", "--result", str(result),
                   "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
                   "--batch-size", str(args.batch_size), "--space", args.space, "--data", args.data]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "DIRECTNAS_NO_PROGRESS": "1"}
            load = os.getloadavg()[0]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            row = json.loads(result.read_text())
            row["load_avg_1min_before"] = load
            rows.append(row)
        print(f"{n} process(es): {row['images_per_s']:.1f} images/s "
              f"({row['step_ms']:.1f} ms per step, load {load:.1f})", flush=True)
    base = rows[0]["images_per_s"]
    for r in rows:
        r["speedup_vs_first"] = r["images_per_s"] / base
    report = {"benchmark": "ddp_throughput", "cpu_count": os.cpu_count(), "space": args.space,
              "data": args.data, "command": " ".join(sys.argv), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=30, help="timed search steps")
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--space", default="fashion-mnist")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--json", help="write the report here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    worker(args) if args.worker else launch(args)


if __name__ == "__main__":
    main()

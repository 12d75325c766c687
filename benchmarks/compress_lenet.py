"""Deep Compression of LeNet-300-100 on Fashion-MNIST through the command line, per seed.

Bar: >= 40x smaller with <= 0.5 point accuracy loss, mean of 3 seeds.  Each seed runs exactly::

    directnas train --model lenet-300-100 --out OUT/sS/train --seed S --threads T
    directnas compress --model OUT/sS/train --method prune,share,huffman --target-ratio 40 \\
        --seed S --threads T --out OUT/sS/compressed

(``directnas.cli.main.main`` with these argument lists; ``--compress-args`` replaces the recipe flags,
e.g. ``"--max-loss 0.5"``).  A trained model is reused when ``OUT/sS/train/model.pt`` exists.

    nice -n 10 python benchmarks/compress_lenet.py --out runs/compress_lenet --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
from pathlib import Path

from directnas.cli.main import main as cli


def run_seed(out: Path, seed: int, threads: int, recipe: list[str]) -> dict:
    train = out / f"s{seed}" / "train"
    common = ["--seed", str(seed), "--threads", str(threads)]
    if not (train / "model.pt").exists():
        assert cli(["train", "--model", "lenet-300-100", "--out", str(train), *common]) == 0
    comp = out / f"s{seed}" / "compressed"
    argv = ["compress", "--model", str(train), "--method", "prune,share,huffman", *recipe,
            *common, "--out", str(comp)]
    print("directnas " + shlex.join(argv), flush=True)
    assert cli(argv) == 0
    m = json.loads((comp / "metrics.json").read_text())
    return {"seed": seed, **{k: m[k] for k in ("accuracy_before", "accuracy_after",
                                                "accuracy_drop", "size_bytes_before",
                                                "size_bytes_after", "compression_ratio")},
            "method_seconds": m["method_seconds"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="runs/compress_lenet")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compress-args", default="--target-ratio 40",
                   help="the recipe flags of directnas compress")
    args = p.parse_args()
    out = Path(args.out)
    rows = [run_seed(out, s, args.threads, shlex.split(args.compress_args)) for s in args.seeds]
    ratio = statistics.mean(r["compression_ratio"] for r in rows)
    loss = statistics.mean(r["accuracy_drop"] for r in rows)
    summary = {"runs": rows, "mean_compression_ratio": ratio, "mean_accuracy_drop": loss,
               "bar_met": ratio >= 40 and loss <= 0.005}
    print(json.dumps(summary, indent=2))
    for r in rows:
        print(f"seed {r['seed']}: {100 * r['accuracy_before']:.2f} -> {100 * r['accuracy_after']:.2f}"
              f" % ({100 * r['accuracy_drop']:+.2f} points lost), {r['size_bytes_before']} -> "
              f"{r['size_bytes_after']} bytes, {r['compression_ratio']:.1f}x")
    print(f"mean: {ratio:.1f}x, {100 * loss:.2f} points lost; bar met: {summary['bar_met']}")


if __name__ == "__main__":
    main()

"""Does the search beat random sampling at equal latency?  (issue 26)

At one target T on a calibrated latency table of the deployment runtime:
  1. ``--random`` nets drawn uniformly from the space (each layer's op uniform over its
     candidates), kept when the table predicts them in [0.9 T, T] (the window the search's
     constrained derivation uses);
  2. the derived nets of ``--seeds`` searches at the default budget (``directnas search``);
  3. every net trained from scratch with one recipe (``directnas train --epochs E``, the same
     training seeds ``--train-seeds`` for all, accuracy = the mean over them), two nets at a
     time on one thread each (``--lanes``);
  4. every trained net re-timed side by side in the runtime (interleaved rounds with a drift
     reference, ``remeasure``), so the latencies compare;
then ``--out`` gets ``{"target_ms", "epochs", "random": [...], "searched": [...]}`` (accuracies as
fractions) and ``--plot`` accuracy against measured latency for both groups.  Every step skips
what its output folder already holds, so an interrupted run resumes.

    python benchmarks/search_vs_random.py --table runs/s26/latency_et.json --target 1.5x \
        --backend executorch-xnnpack --random 8 --seeds 0 1 2 --epochs 10 --root runs/svr \
        --train-subset 10000 --out benchmarks/results/search_vs_random.json \
        --plot benchmarks/results/search_vs_random.png
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from directnas.runtimes import Protocol
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import predict_arch_ms
from directnas.report.remeasure import remeasure
from directnas.latency.sampling import ArchSampler
from directnas.report.runs import load_run
from directnas.space.arch import Arch
from directnas.space.space import load_space
from directnas.latency.target import parse_target, resolve_target


def sh(args: list[str], log: Path) -> None:
    print(time.strftime("%T"), "+ directnas", " ".join(args), flush=True)
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "directnas", *args], check=True, stdout=f,
                       stderr=subprocess.STDOUT, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def random_archs(space, table: LatencyTable, target: float, n: int, seed: int) -> list[Arch]:  # noqa: ANN001
    """``n`` distinct archs drawn uniformly from those the table predicts in [0.9 T, T]."""
    sampler = ArchSampler(space, table, target_ms=0.95 * target, tolerance=0.05 / 0.95, seed=seed)
    out: list[Arch] = []
    for _ in range(100 * n):
        a = sampler.sample()
        if a.ops not in [b.ops for b in out]:
            out.append(a)
        if len(out) == n:
            return out
    raise SystemExit(f"only {len(out)} distinct nets in [0.9 T, T]: widen the target")


def write_subset(root: Path, n: int) -> Path:
    """An IDX folder with ``n`` Fashion-MNIST training images (the same share of every class,
    drawn with seed 0) and the whole test set: a ``--data`` folder every net trains on."""
    import numpy as np

    from directnas.data.readers.idx import _find

    from directnas.data.readers import FASHION_MNIST_DIR, read_idx

    d = root / f"fashion-mnist-{n}"
    if (d / "t10k-labels-idx1-ubyte").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    x = read_idx(_find(FASHION_MNIST_DIR, "train-images-idx3-ubyte"))
    y = read_idx(_find(FASHION_MNIST_DIR, "train-labels-idx1-ubyte"))
    rng = np.random.default_rng(0)
    k = int(y.max()) + 1
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[: n // k] for c in range(k)]))

    def idx(path: Path, a: np.ndarray) -> None:
        head = bytes([0, 0, 8, a.ndim]) + b"".join(int(v).to_bytes(4, "big") for v in a.shape)
        path.write_bytes(head + a.astype(np.uint8).tobytes())

    idx(d / "train-images-idx3-ubyte", x[keep])
    idx(d / "train-labels-idx1-ubyte", y[keep])
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        idx(d / stem, read_idx(_find(FASHION_MNIST_DIR, stem)))
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="fashion-mnist")
    ap.add_argument("--table", required=True, help="calibrated latency table (directnas profile)")
    ap.add_argument("--target", required=True, help="ms, or a multiple of the fastest net: 1.5x")
    ap.add_argument("--backend", default="executorch-xnnpack", help="runtime the nets are timed in")
    ap.add_argument("--random", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0],
                    help="train every net once per seed; its accuracy is the mean (training noise "
                         "between seeds of one net is of the order of the differences between nets)")
    ap.add_argument("--lanes", type=int, default=2)
    ap.add_argument("--search-args", default="", help="extra flags for directnas search")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--train-subset", type=int, default=0,
                    help="train every net on this many training images (stratified, seed 0; the "
                         "test set stays whole); 0: all of them")
    ap.add_argument("--root", default="runs/svr")
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot", default=None)
    a = ap.parse_args()
    space, table = load_space(a.space), LatencyTable.load(a.table)
    target = resolve_target(parse_target(a.target), space, table)
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    print(f"target {target:.4f} ms ({a.target}); table {a.table}")

    rand = random_archs(space, table, target, a.random, seed=1234)
    for i, arch in enumerate(rand):
        d = root / "archs"
        d.mkdir(exist_ok=True)
        if not (d / f"random{i}.json").exists():
            arch.save(d / f"random{i}.json")

    data = str(write_subset(root, a.train_subset)) if a.train_subset else "fashion-mnist"
    threads = max(1, 2 // a.lanes)
    cfg = root / "train.yaml"
    cfg.write_text(f"epochs: {a.epochs}\nthreads: {threads}\n")

    def search(seed: int) -> None:
        d = root / f"search{seed}"
        if not (d / "arch.json").exists():
            sh(["search", "--space", a.space, "--latency-table", a.table, "--target-latency",
                f"{target}", "--seed", str(seed), "--threads", str(threads),
                "--out", str(d), *(["--resume"] if (d / "search_checkpoint.pt").exists() else []),
                *a.search_args.split()], root / f"search{seed}.log")

    def run_name(name: str, seed: int) -> str:  # seed 0 keeps the folder name of older runs
        return name if seed == 0 else f"{name}_s{seed}"

    def train(name: str, arch: Path) -> None:
        for seed in a.train_seeds:
            d = root / "train" / run_name(name, seed)
            if not (d / "metrics.json").exists():
                sh(["train", "--arch", str(arch), "--config", str(cfg), "--seed", str(seed), "--data", data,
                    "--latency-table", a.table, "--backend", a.backend, "--repeats", "10", "--rounds", "2",
                    "--out", str(d), *(["--resume"] if d.exists() else [])],
                   root / f"train_{run_name(name, seed)}.log")

    jobs = [(f"random{i}", root / "archs" / f"random{i}.json") for i in range(a.random)] + \
           [(f"searched{s}", root / f"search{s}" / "arch.json") for s in a.seeds]
    # one queue over the lanes: the searches first, then the random nets (while the last searches
    # run), then the searched nets, each waiting for its own search
    with ThreadPoolExecutor(max_workers=a.lanes) as lane:
        searches = {s: lane.submit(search, s) for s in a.seeds}

        def after(seed: int, name: str, arch: Path) -> None:
            searches[seed].result()
            train(name, arch)

        done = [lane.submit(train, n, p) for n, p in jobs if n.startswith("random")]
        done += [lane.submit(after, s, f"searched{s}", root / f"search{s}" / "arch.json") for s in a.seeds]
        for f in [*searches.values(), *done]:
            f.result()
    runs = [load_run(root / "train" / run_name(n, a.train_seeds[0])) for n, _ in jobs]
    proto = Protocol(threads=1)
    timed = remeasure([r for r in runs if r is not None], backend=a.backend, proto=proto, rounds=a.rounds)
    res: dict = {"target_ms": target, "epochs": a.epochs, "backend": a.backend, "table": a.table,
                 "train_images": a.train_subset or None, "train_seeds": a.train_seeds,
                 "random": [], "searched": []}
    if timed and "latency_noise_floor" in timed[0].metrics:  # the drift reference's round spread
        res["latency_noise_floor"] = timed[0].metrics["latency_noise_floor"]
        res["latency_reference_ms"] = timed[0].metrics["latency_reference_ms"]
    for (name, arch_path), r in zip(jobs, runs):
        arch = Arch.load(arch_path)
        accs = [json.loads((root / "train" / run_name(name, sd) / "metrics.json").read_text())["test_accuracy"]
                for sd in a.train_seeds]
        row = {"arch": arch.ops, "test_accuracy": statistics.mean(accs), "test_accuracies": accs,
               "latency_ms": r.metrics["latency_ms"], "latency_spread_ms": r.metrics.get("latency_spread_ms"),
               "predicted_latency_ms": predict_arch_ms(arch, table)}
        if name.startswith("searched"):
            row = {"seed": int(name.removeprefix("searched")), **row}
            sj = root / f"search{row['seed']}" / "search.json"
            if sj.exists():
                s = json.loads(sj.read_text())
                row["mean_max_prob"] = s.get("decision", {}).get("mean_max_prob")
                row["search_wall_s"] = s.get("search_wall_s")
            res["searched"].append(row)
        else:
            res["random"].append(row)
    ra = [x["test_accuracy"] for x in res["random"]]
    sa = [x["test_accuracy"] for x in res["searched"]]
    res["summary"] = {"random_mean": statistics.mean(ra), "random_std": statistics.stdev(ra) if len(ra) > 1 else 0.0,
                      "searched_mean": statistics.mean(sa),
                      "searched_std": statistics.stdev(sa) if len(sa) > 1 else 0.0}
    if len(a.train_seeds) > 1:  # pooled std between training seeds of one net: the noise floor
        rows = res["random"] + res["searched"]
        res["summary"]["training_noise_std"] = statistics.mean(
            statistics.variance(x["test_accuracies"]) for x in rows) ** 0.5
    res["summary"]["searched_beats_random_plus_1std"] = \
        res["summary"]["searched_mean"] >= res["summary"]["random_mean"] + res["summary"]["random_std"]
    from directnas.nas.diagnostics import seed_agreement

    res["seed_agreement"] = seed_agreement([x["arch"] for x in res["searched"]])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res["summary"]))
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for key, mk, c in (("random", "o", "tab:gray"), ("searched", "*", "tab:red")):
            ax.scatter([x["latency_ms"] for x in res[key]], [100 * x["test_accuracy"] for x in res[key]],
                       marker=mk, s=80 if mk == "*" else 40, c=c, label=key)
        ax.axvline(target, ls="--", c="k", lw=0.8, label=f"target {target:.3f} ms")
        ax.set_xlabel(f"measured latency, {a.backend}, batch 1, 1 thread (ms)")
        ax.set_ylabel(f"test accuracy after {a.epochs} epochs (%)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.plot, dpi=120)


if __name__ == "__main__":
    main()

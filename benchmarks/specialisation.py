"""Per-device specialisation: one search per latency backend, then every searched architecture
measured end to end on every backend (the ProxylessNAS paper's GPU/CPU/mobile table, here
torch-cpu x onnxruntime-cpu, plus cuda where a GPU is present).

Each backend gets its own latency table and a target the same fraction of the way from the
space's fastest to its slowest net on that table (``--target-frac``), so the searches are equally
constrained.  Specialisation holds if the architectures differ and, on every backend, the net
searched for it is the fastest (the diagonal of the table is the minimum of its column).

    nice -n 15 python benchmarks/specialisation.py --out runs/spec               # search only
    nice -n 15 python benchmarks/specialisation.py --out runs/spec --train       # + train and test
    # smoke run (minutes):
    nice -n 15 python benchmarks/specialisation.py --out /tmp/spec --search-epochs 1 \
        --warmup-epochs 1 --max-steps 20 --repeats 10 --warmup 2 --rounds 2

Re-running resumes: finished searches and tables are reused.  Writes ``OUT/specialisation.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from directnas.cli.main import main as directnas
from directnas.data.readers import load_dataset
from directnas.utils.fileio import write_json, write_text
from directnas import runtimes
from directnas.latency.table import LatencyTable
from directnas.latency.predictor import predict_arch_ms
from directnas.latency.measure import (NOISE, REFERENCE, Protocol, measure_interleaved,
                                        reference_arch)
from directnas.space.arch import Arch
from directnas.space.space import load_space


def default_backends() -> str:
    names = ["torch-cpu", "onnxruntime-cpu"]
    if "cuda" in runtimes.names() and torch.cuda.is_available():
        names.append("cuda")
    return ",".join(names)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--space", default="fashion-mnist")
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--backends", default=default_backends(), help="comma list (default: %(default)s)")
    p.add_argument("--target-frac", type=float, default=0.3,
                   help="target = fastest + frac * (slowest - fastest) on each backend's table")
    p.add_argument("--search-epochs", type=int)
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--max-steps", type=int, help="cap on steps per epoch (smoke runs)")
    p.add_argument("--train", action="store_true", help="also train and test each searched net (directnas run)")
    p.add_argument("--train-epochs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5, help="interleaved measuring rounds of the cross table")
    p.add_argument("--target", help="target as a multiple of each table's fastest net, e.g. 1.5x "
                                    "(the demo's relative target); overrides --target-frac")
    p.add_argument("--search-args", default="",
                   help="extra flags for every directnas search, e.g. '--weight-sharing full'")
    p.add_argument("--only", help="profile and search for this one backend and stop (run one process "
                                  "per backend side by side, then once without --only for the cross table)")
    return p.parse_args(argv)


def target_for(table: Path, space: str, frac: float, mult: str | None = None) -> float:
    fixed, per_layer = LatencyTable.load(table).space_latencies(load_space(space))
    lo, hi = fixed + sum(map(min, per_layer)), fixed + sum(map(max, per_layer))
    if mult:
        return round(lo * float(mult.rstrip("x")), 4)
    return round(lo + frac * (hi - lo), 4)


def search_for(args: argparse.Namespace, backend: str, out: Path, proto: list[str]) -> Path:
    """Profile + search (+ train with --train) for one backend; returns its arch.json."""
    table = out / f"latency-{backend}.json"
    if not table.exists() and directnas(["profile", "--space", args.space, "--out", str(table),
                                         "--backend", backend, *proto]):
        raise SystemExit(2)
    target = target_for(table, args.space, args.target_frac, args.target)
    how = f"{args.target} its fastest net" if args.target else f"{args.target_frac:g} of the space's range"
    print(f"{backend}: target {target:g} ms ({how} on its table)")
    common = ["--space", args.space, "--data", args.data, "--latency-table", str(table),
              "--backend", backend, "--target-latency", f"{target:g}", "--seed", str(args.seed), *proto,
              *(["--epochs", str(args.search_epochs)] if args.search_epochs else []),
              *(["--warmup-epochs", str(args.warmup_epochs)] if args.warmup_epochs else []),
              *args.search_args.split()]
    if args.max_steps:
        write_text(out / "max_steps.yaml", f"max_steps: {args.max_steps}\n")
        common += ["--config", str(out / "max_steps.yaml")]
    folder = out / backend
    if args.train:
        extra = ["--train-config", str(out / "max_steps.yaml")] if args.max_steps else []
        extra += ["--train-epochs", str(args.train_epochs)] if args.train_epochs else []
        if directnas(["run", *common, *extra, "--out", str(folder)]):
            raise SystemExit(2)
        return folder / "search" / "arch.json"
    if not (folder / "arch.json").exists() and directnas(["search", *common, "--resume", "--out", str(folder)]):
        raise SystemExit(2)
    return folder / "arch.json"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    missing = [b for b in backends if b not in runtimes.names()]
    if missing or len(backends) < 2:
        print(f"need >= 2 registered backends; not in directnas.runtimes.names(): "
              f"{', '.join(missing) or '-'} (have: {', '.join(runtimes.names())})", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proto_args = ["--threads", str(args.threads), "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if args.only:
        if args.only not in backends:
            print(f"--only {args.only} is not in --backends {args.backends}", file=sys.stderr)
            return 2
        print(f"arch: {search_for(args, args.only, out, proto_args)}")
        return 0
    archs = {b: Arch.load(search_for(args, b, out, proto_args)) for b in backends}

    # the cross table: every searched net on every backend, interleaved rounds
    shape = load_dataset(args.data).input_shape
    proto = Protocol(batch_size=1, threads=args.threads, warmup=args.warmup, repeats=args.repeats)
    # one interleaved session per runtime (its column), with the space's reference net in every
    # round: drift-normalised, and the reference's round spread is the column's noise floor
    measured: dict[str, dict[str, float]] = {}
    noise: dict[str, float | None] = {}
    for b in backends:
        items = {a: (archs[a].build(), (1, *shape)) for a in backends}
        items[REFERENCE] = (reference_arch(load_space(args.space)).build(), (1, *shape))
        col = measure_interleaved(runtimes.get(b).make_runners(items, proto), proto, rounds=args.rounds, seed=args.seed)
        noise[b] = col[NOISE]["noise_floor"]
        measured.update({f"{a}|{b}": col[a] for a in backends})
    tables = {b: LatencyTable.load(out / f"latency-{b}.json") for b in backends}
    latency = {a: {b: measured[f"{a}|{b}"]["ms"] for b in backends} for a in backends}
    spread = {a: {b: measured[f"{a}|{b}"]["spread_ms"] for b in backends} for a in backends}
    predicted = {a: {b: predict_arch_ms(archs[a], tables[b]) for b in backends} for a in backends}
    own_fastest = {b: all(latency[b][b] <= latency[a][b] for a in backends) for b in backends}
    differ = {f"{a} vs {b}": sum(x != y for x, y in zip(archs[a].ops, archs[b].ops))
              for i, a in enumerate(backends) for b in backends[i + 1:]}
    result = {"command": "python benchmarks/specialisation.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "space": args.space, "backends": backends, "threads": args.threads,
              "target_frac": None if args.target else args.target_frac, "target": args.target,
              "search_args": args.search_args,
              "targets_ms": {b: archs[b].meta.get("target_latency_ms") for b in backends},
              "archs": {b: archs[b].ops for b in backends}, "layers_differing": differ,
              "latency_ms": latency, "latency_spread_ms": spread, "noise_floor": noise, "predicted_latency_ms": predicted,
              "own_backend_fastest": own_fastest, "specialised": all(own_fastest.values())
              and all(v > 0 for v in differ.values()), "rounds": args.rounds}
    write_json(out / "specialisation.json", result)

    print("\nmeasured latency (ms, batch 1; rows: searched for, columns: measured on)\n")
    print("| searched for | " + " | ".join(backends) + " |\n|---|" + "---|" * len(backends))
    for a in backends:
        cells = [f"**{latency[a][b]:.3f}**" if a == b else f"{latency[a][b]:.3f}" for b in backends]
        print(f"| {a} | " + " | ".join(cells) + " |")
    for a in backends:
        print(f"{a}: {archs[a].summary()}")
    print(f"noise floor per runtime (the reference net's round spread): {noise}")
    print(f"layers that differ: {differ}; each net fastest on its own backend: {own_fastest}")
    print(f"JSON: {(out / 'specialisation.json').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

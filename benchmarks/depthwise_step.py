"""Training-step time with and without DepthwiseConv2d's matmul path, side by side in one process.

Two tables:
  * per op: forward + backward of one depthwise conv at batch ``--batch-size`` for the shapes of
    the fashion-mnist space's 4x4 stages (where the kernel overhangs the map), oneDNN vs matmul;
  * per net: one SGD step (forward, loss, backward, update) of ``--arch`` (default: the largest
    candidate net, every layer k7_e6), channels_last as training runs; with ``--compile`` also
    the same step through ``torch.compile`` (inductor), with each depthwise path.

The two sides alternate in rounds (``--rounds``) and each figure is the median over all rounds, so
drift of a shared machine hits both sides alike.

    python benchmarks/depthwise_step.py --threads 2 --out benchmarks/results/depthwise_step.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from directnas.space.arch import Arch, uniform_arch
from directnas.space.depthwise import DepthwiseConv2d
from directnas.space.space import load_space


def timed(fn: Callable[[], object], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def side_by_side(fns: dict[str, Callable[[], object]], rounds: int, reps: int,
                 warmup: int) -> dict[str, float]:
    """Median ms per call of each side, the sides alternating in ``rounds``."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        timed(fn, warmup)
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name] += timed(fn, reps)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", help="arch.json (default: every layer k7_e6)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--compile", action="store_true",
                    help="also time the step through torch.compile (minutes of compiling)")
    ap.add_argument("--out", help="write the figures here as JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    result: dict[str, dict[str, float]] = {}

    print(f"per op, forward + backward, batch {a.batch_size}, {a.threads} threads (ms, median)")
    print(f"{'channels':>8} {'map':>4} {'k':>2} {'oneDNN':>8} {'matmul':>8} {'speed-up':>8}")
    for c, hw, k in [(240, 4, 3), (240, 4, 5), (240, 4, 7), (480, 4, 5), (576, 4, 7)]:
        convs = {name: DepthwiseConv2d(c, k, matmul_path=name == "matmul").to(
            memory_format=torch.channels_last).train() for name in ("oneDNN", "matmul")}
        convs["oneDNN"].load_state_dict(convs["matmul"].state_dict())  # the same weights
        x = torch.randn(a.batch_size, c, hw, hw).to(memory_format=torch.channels_last)
        x.requires_grad_()
        gy = torch.randn(a.batch_size, c, hw, hw).to(memory_format=torch.channels_last)

        def op_step(conv: torch.nn.Module) -> Callable[[], None]:
            return lambda: conv(x).backward(gy)

        r = side_by_side({name: op_step(conv) for name, conv in convs.items()}, a.rounds,
                         a.reps, 2)
        result[f"dw_c{c}_hw{hw}_k{k}"] = r
        note = "" if k > hw else "  (kernel fits: oneDNN kept)"
        print(f"{c:>8} {hw:>4} {k:>2} {r['oneDNN']:>8.1f} {r['matmul']:>8.1f} "
              f"{r['oneDNN'] / r['matmul']:>7.2f}x{note}")

    space = load_space("fashion-mnist")
    arch = Arch.load(a.arch) if a.arch else uniform_arch(space, "k7_e6")
    net = arch.build().to(memory_format=torch.channels_last).train()
    plain = arch.build(matmul_path=False).to(memory_format=torch.channels_last).train()
    plain.load_state_dict(net.state_dict())  # the same weights, oneDNN's depthwise path
    size = arch.space.input_size
    x = torch.randn(a.batch_size, arch.space.input_channels, size, size).to(
        memory_format=torch.channels_last)
    y = torch.randint(0, arch.space.num_classes, (a.batch_size,))

    def make_step(model: torch.nn.Module, params: torch.nn.Module) -> Callable[[], None]:
        opt = torch.optim.SGD(params.parameters(), lr=0.01, momentum=0.9)

        def train_step() -> None:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return train_step

    fns = {"oneDNN": make_step(plain, plain), "matmul": make_step(net, net)}
    if a.compile:  # one compiled graph per net, so one per path
        fns["compiled-oneDNN"] = make_step(torch.compile(plain), plain)
        fns["compiled-matmul"] = make_step(torch.compile(net), net)
    r = side_by_side(fns, a.rounds, a.reps, 3)
    result["train_step"] = r
    print(f"\none training step of {a.arch or 'the all-k7_e6 net'}: oneDNN {r['oneDNN']:.0f} ms, "
          f"matmul path {r['matmul']:.0f} ms ({r['oneDNN'] / r['matmul']:.2f}x)")
    for name in ("compiled-oneDNN", "compiled-matmul"):
        if name in r:
            print(f"  torch.compile, {name.split('-')[1]} path: {r[name]:.0f} ms "
                  f"({r['matmul'] / r[name]:.2f}x the eager matmul path)")
    if a.out:
        Path(a.out).write_text(json.dumps({k: {f"{n}_step_ms": v for n, v in d.items()}
                                           for k, d in result.items()}, indent=2) + "\n")


if __name__ == "__main__":
    main()

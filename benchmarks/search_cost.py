"""Memory and time of one search step per gate strategy vs training the largest single network.

For the fashion-mnist space at one batch size, each configuration runs in a fresh subprocess
(so allocations do not pollute each other) and reports

  * peak_mem_mb: growth of the process's RSS high-water mark (getrusage ru_maxrss) over the
    steps, measured after the model, optimizers and batch are built (activations, gradients,
    optimizer state, allocator overhead of the step itself);
  * step_ms: median wall time per step after ``--warmup`` untimed steps.

Configurations: ``single`` = the largest candidate network (every layer k7_e6, no zero) trained
alone with SGD; every strategy of the registry: its weight step (prepare_weight_step + SGD step,
as in Searcher.run) and its alpha step, each in its own process.  A strategy's combined figures
are one search iteration: peak = max(weight, alpha), time = weight + alpha / arch_every.
Everything runs in channels_last, as the search does (SearchConfig.channels_last).

    nice -n 15 python benchmarks/search_cost.py --batch-size 128 --out search_cost.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def child(name: str, phase: str, a: argparse.Namespace) -> dict[str, float]:
    """One configuration in this (fresh) process."""
    from directnas.nas.gates import make_strategy
    from directnas.nas.loss import HardwareLoss
    from directnas.nas.supernet import Supernet
    from directnas.space.arch import uniform_arch
    from directnas.space.space import load_space

    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    space = load_space(a.space)
    cl = torch.channels_last
    shape = (a.batch_size, space.input_channels, space.input_size, space.input_size)
    x = torch.randn(*shape).contiguous(memory_format=cl)
    y = torch.randint(0, space.num_classes, (a.batch_size,))
    gen = torch.Generator().manual_seed(0)
    if name == "single":
        net = uniform_arch(space, "k7_e6").build().to(memory_format=cl).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=4e-5)

        def step() -> None:
            loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        snet = Supernet(space).to(memory_format=cl).train()
        # synthetic latencies: the memory and time of a step do not depend on their values
        snet.set_latency(1.0, [[0.0 if c == "zero" else 1.0 + 0.1 * j for j, c in enumerate(l.candidates)]
                               for l in space.layers])
        strat = make_strategy(name)
        target = float(snet.expected_latency().detach())
        objective = HardwareLoss("lagrange", target_ms=target)
        w_opt = torch.optim.SGD(snet.weight_parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                weight_decay=4e-5)
        a_opt = torch.optim.Adam(snet.arch_parameters(), lr=1e-3, betas=(0.0, 0.999), eps=1e-8)

        if phase == "weight":
            def step() -> None:
                strat.prepare_weight_step(snet, gen, warmup=False)
                loss = F.cross_entropy(snet(x), y, label_smoothing=0.1)
                w_opt.zero_grad(set_to_none=True)
                loss.backward()
                w_opt.step()
        else:
            def step() -> None:
                strat.alpha_step(snet, x, y, objective=objective, optimizer=a_opt, gen=gen)
    base = _rss_mb()
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return {"peak_mem_mb": _rss_mb() - base, "step_ms": statistics.median(times),
            "base_rss_mb": base}


def run_child(name: str, phase: str, a: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", name, "--phase", phase, "--space", a.space,
           "--batch-size", str(a.batch_size), "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--threads", str(a.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{name}/{phase} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from directnas.nas.gates import STRATEGIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="fashion-mnist")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arch-every", type=int, default=2, help="alpha steps every N weight steps")
    p.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    p.add_argument("--out", help="write {name: {peak_mem_mb, step_ms, ...}} here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--phase", default="weight", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.phase, a)))
        return 0
    results: dict[str, dict[str, float]] = {"single": run_child("single", "train", a)}
    single = results["single"]
    print(f"single: {single['peak_mem_mb']:.1f} MB, {single['step_ms']:.0f} ms", file=sys.stderr)
    for name in a.strategies:
        w, al = run_child(name, "weight", a), run_child(name, "alpha", a)
        peak = max(w["peak_mem_mb"], al["peak_mem_mb"])
        ms = w["step_ms"] + al["step_ms"] / a.arch_every
        results[name] = {
            "peak_mem_mb": peak, "step_ms": ms,
            "weight_peak_mem_mb": w["peak_mem_mb"], "weight_step_ms": w["step_ms"],
            "alpha_peak_mem_mb": al["peak_mem_mb"], "alpha_step_ms": al["step_ms"],
            "mem_vs_single": peak / single["peak_mem_mb"],
            "weight_step_vs_single": w["step_ms"] / single["step_ms"],
            "iteration_vs_single": ms / single["step_ms"]}
        print(f"{name}: done", file=sys.stderr)
    hdr = (f"{'config':<12} {'peak MB':>8} {'x single':>8} {'weight MB':>9} {'alpha MB':>9} "
           f"{'weight ms':>9} {'alpha ms':>9} {'iter ms':>8} {'x single':>8}")
    print(f"space {a.space}, batch {a.batch_size}, channels_last, {a.threads} threads, "
          f"arch_every {a.arch_every}, median of {a.steps} steps")
    print(hdr)
    print(f"{'single':<12} {single['peak_mem_mb']:8.1f} {1.0:8.2f} {'':>9} {'':>9} "
          f"{single['step_ms']:9.0f} {'':>9} {single['step_ms']:8.0f} {1.0:8.2f}")
    for name in a.strategies:
        r = results[name]
        print(f"{name:<12} {r['peak_mem_mb']:8.1f} {r['mem_vs_single']:8.2f} "
              f"{r['weight_peak_mem_mb']:9.1f} {r['alpha_peak_mem_mb']:9.1f} {r['weight_step_ms']:9.0f} "
              f"{r['alpha_step_ms']:9.0f} {r['step_ms']:8.0f} {r['iteration_vs_single']:8.2f}")
    if "binary-two" in results and "darts" in results:
        print(f"darts / binary-two peak memory: "
              f"{results['darts']['peak_mem_mb'] / results['binary-two']['peak_mem_mb']:.2f}x")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

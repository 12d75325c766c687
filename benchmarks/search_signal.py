"""How much does one alpha step know?  The signal-to-noise ratio of the alpha gradient.

A search decides only if the alpha gradient's mean (what the ops really do to the validation
loss) outgrows its noise (which paths and which batch were drawn) within the budget.  For a
supernet after its warm-up (``--warmup-steps`` weight steps, paths uniform; the default
search's first epoch), this draws ``--samples`` alpha gradients of the cross-entropy alone
(weights and alpha fixed) with each estimator and reports, per layer, the per-step SNR
||mean|| / sqrt(sum of variances) (``snr_raw``; pure noise reads 1/sqrt(samples), so ``snr`` is
sqrt(snr_raw^2 - 1/samples), the part above that floor) and the number of steps K* = 1 / SNR^2
after which the summed mean exceeds one noise standard deviation.  It also gives the argmax path's validation accuracy
in the supernet and the weight steps per second.

    nice -n 10 python benchmarks/search_signal.py --out benchmarks/results/search_signal.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from directnas.data.readers import load_dataset
from directnas.nas.gates import make_strategy
from directnas.nas.loss import HardwareLoss
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.utils.seeding import seed_everything
from directnas.space.space import load_space


class NoStep:
    """An 'optimizer' that leaves alpha where it is: the estimator's gradient is read instead."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params

    def zero_grad(self, set_to_none: bool = False) -> None:
        for p in self.params:
            p.grad = torch.zeros_like(p)

    def step(self) -> None:
        pass


def gradient_stats(s: Searcher, strategy: str, samples: int) -> dict:
    strat = make_strategy(strategy)
    params = s.net.arch_parameters()
    opt = NoStep(params)
    ce = HardwareLoss("none", None)
    grads: list[list[torch.Tensor]] = [[] for _ in params]
    t0 = time.perf_counter()
    for _ in range(samples):
        vx, vy = s._valid_batch()
        strat.alpha_step(s.net, vx, vy, objective=ce, optimizer=opt, gen=s.gen)  # type: ignore[arg-type]
        for g, p in zip(grads, params):
            g.append(p.grad.detach().clone())
    step_s = (time.perf_counter() - t0) / samples
    layers = []
    for l, g in enumerate(grads):
        G = torch.stack(g)  # (samples, N)
        mean, var = G.mean(0), G.var(0)
        raw = float(mean.norm() / var.sum().sqrt().clamp_min(1e-12))
        # pure noise reads raw ~ 1/sqrt(samples): E||mean||^2 = ||mu||^2 + tr(Sigma)/samples
        snr = max(0.0, raw ** 2 - 1 / samples) ** 0.5
        layers.append({"layer": l, "snr_raw": raw, "snr": snr,
                       "steps_to_signal": 1 / max(snr, 1e-9) ** 2,
                       "mean": mean.tolist(), "std": var.sqrt().tolist(),
                       "best_op_by_mean": s.net.mixed[l].names[int(torch.argmin(mean))]})
    snrs = [x["snr"] for x in layers]
    return {"strategy": strategy, "samples": samples, "alpha_step_s": step_s,
            "pure_noise_raw_snr": samples ** -0.5,
            "median_raw_snr": sorted(x["snr_raw"] for x in layers)[len(layers) // 2],
            "median_snr": sorted(snrs)[len(snrs) // 2],
            "median_steps_to_signal": sorted(x["steps_to_signal"] for x in layers)[len(layers) // 2],
            "layers": layers}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="fashion-mnist")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--warmup-steps", type=int, default=330)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--strategies", default="binary-two,binary-full-v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run", default="runs/search_signal", help="folder of the warmed-up supernet")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    space, data = load_space(a.space), load_dataset(a.data)
    cfg = SearchConfig(warmup_epochs=1, epochs=0, max_steps=a.warmup_steps, lr=a.lr,
                       batch_size=a.batch_size, threads=a.threads, eval_batches=0)
    seed_everything(cfg.seed)  # as directnas.search does at its entry
    s = Searcher(space, data, None, cfg, a.run)
    t0 = time.perf_counter()
    if not s.resume():
        s.run()
    warm_s = time.perf_counter() - t0
    acc = s.supernet_accuracy()
    res = {"space": a.space, "warmup_steps": a.warmup_steps, "lr": a.lr, "batch_size": a.batch_size,
           "warmup_s": warm_s, "train_loss_last_epoch": s.state.log[-1]["train_loss"] if s.state.log else None,
           "argmax_path_valid_accuracy": acc, "estimators": []}
    for name in a.strategies.split(","):
        st = gradient_stats(s, name, a.samples)
        res["estimators"].append(st)
        print(f"{name}: median per-step SNR {st['median_raw_snr']:.3f} raw (pure noise: "
              f"{st['pure_noise_raw_snr']:.3f}), {st['median_snr']:.3f} above it; median steps to signal "
              f"{st['median_steps_to_signal']:.0f}, {st['alpha_step_s']:.2f} s/step")
        print("  per layer SNR:", " ".join(f"{x['snr']:.2f}" for x in st["layers"]))
    print(f"supernet: loss {res['train_loss_last_epoch']}, argmax-path valid acc {acc:.3f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()

"""Deep Compression of LeNet-300-100 on Fashion-MNIST: train, prune + share + huffman.

Bar: >= 40x smaller with <= 0.5 point accuracy loss.  Uses the public API only::

    nice -n 15 python benchmarks/compress_lenet.py --out runs/compress_lenet

A trained model is reused when ``OUT/train/model.pt`` exists (delete it to retrain).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import torch

from directnas.compress.finetune import FinetuneConfig, accuracy, eval_batches, finetune
from directnas.compress.model_io import load_model
from directnas.compress.pipeline import compress
from directnas.compress.state import CompressConfig, State
from directnas.data import load_dataset
from directnas.fileio import torch_save
from directnas.models import build_named
from directnas.train import TrainConfig, train_net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="runs/compress_lenet")
    p.add_argument("--model", default="lenet-300-100")
    p.add_argument("--epochs", type=int, default=15, help="training epochs")
    p.add_argument("--sparsity", type=float, default=0.92)
    p.add_argument("--prune-steps", type=int, default=5)
    p.add_argument("--finetune-epochs", type=int, default=5)
    p.add_argument("--finetune-lr", type=float, default=0.05)
    p.add_argument("--finetune-wd", type=float, default=5e-4,
                   help="weight decay of the retraining (5e-4; runs before session 6 used 5e-5)")
    p.add_argument("--bits-fc", type=int, default=4)
    p.add_argument("--bits-conv", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the dense training and the retraining")
    p.add_argument("--allocation", default="equal-drop", choices=("equal-drop", "per-weight"))
    p.add_argument("--methods", default="prune,share,huffman")
    p.add_argument("--augment", action="store_true",
                   help="train (directnas.train) and fine-tune with random crop + flip")
    p.add_argument("--control", action="store_true",
                   help="also fine-tune the dense net as long, unpruned (is the gain pruning's?)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = load_dataset("fashion-mnist")
    ckpt = out / "train" / "model.pt"
    if not ckpt.exists():
        torch.manual_seed(args.seed)
        net = build_named(args.model, input_shape=data.input_shape, num_classes=10)
        t0 = time.perf_counter()
        if not args.augment:  # directnas.train's recipe without crop/flip (an MLP gains little)
            finetune(net, data, FinetuneConfig(epochs=args.epochs, lr=0.1, augment=False,
                                               seed=args.seed))
            acc = accuracy(net, eval_batches(data))
        else:
            acc = train_net(net, data, TrainConfig(epochs=args.epochs, threads=args.threads,
                                                   channels_last=False, seed=args.seed))["accuracy"]
        logging.info("trained in %.0f s: test accuracy %.4f", time.perf_counter() - t0, acc)
        torch_save(ckpt, {"kind": "directnas-model", "name": args.model, "arch": None,
                          "model": args.model, "state_dict": net.state_dict(),
                          "input_shape": data.input_shape, "num_classes": 10,
                          "mean": data.mean, "std": data.std})
    net, meta = load_model(ckpt)
    cfg = CompressConfig(
        finetune=FinetuneConfig(epochs=args.finetune_epochs, lr=args.finetune_lr,
                                weight_decay=args.finetune_wd, augment=args.augment, seed=args.seed),
        sparsity=args.sparsity, allocation=args.allocation, prune_steps=args.prune_steps,
        bits_fc=args.bits_fc,
        bits_conv=args.bits_conv, threads=args.threads)
    t0 = time.perf_counter()
    m = compress(State(net=net, meta=meta, data=data, cfg=cfg, out=out / "compressed"),
                 args.methods.split(","))
    keys = ("accuracy_before", "accuracy_after", "size_bytes_before", "size_bytes_after",
            "compression_ratio", "latency_ms_before", "latency_ms_after")
    summary = {k: m[k] for k in keys} | {"compress_wall_s": time.perf_counter() - t0,
                                         "bar_met": m["compression_ratio"] >= 40
                                         and m["accuracy_drop"] <= 0.005}
    if args.control:  # the same retraining budget spent on the dense net
        dense, _ = load_model(ckpt)
        ft = replace(cfg.finetune, epochs=cfg.finetune.epochs * (cfg.prune_steps + 1))
        finetune(dense, data, ft)
        summary["control_dense_finetuned_accuracy"] = accuracy(dense, eval_batches(data))
    print(json.dumps(summary, indent=2))
    for r in json.loads((out / "compressed" / "layers.json").read_text()):
        print(f"{r['layer']:<6}{r['params']:>8} params  density {r['density']:.3f}  "
              f"{r['unique_values']:>4} values  {r['bytes_encoded']:>6} bytes  "
              f"{r['compression_ratio']:.1f}x  {r['encoding']}")


if __name__ == "__main__":
    main()

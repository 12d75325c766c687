"""Re-encode a finished ``directnas compress`` run with the current ``.dnz`` codec.

For a run made before a codec change (here: the deflated header and float16 BatchNorm/bias
tensors of commit d7d4f08), this loads the run's ``model.pt``, reports test accuracy and file
size as written, then applies what the current ``share`` step does last (round the tensors it
does not share to float16) and encodes again, and reports accuracy and size after that.  Sizes
are the encoded bytes; the "before" size is the dense float32 file of the uncompressed source
model in the current format (the denominator ``directnas compress`` uses).

    python benchmarks/dnz_recode.py --run runs/c-dc --source runs/demo/train \
        --out benchmarks/results/demo_prune_share_huffman.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from directnas.compression.codec import encode_state
from directnas.compression.finetune import accuracy, eval_batches
from directnas.models.model_file import load_model
from directnas.compression.share import round_rest_to_half
from directnas.data.readers import load_dataset
from directnas.utils.fileio import read_json, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a 'directnas compress' output folder")
    ap.add_argument("--source", required=True, help="the model it was compressed from")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    src, _ = load_model(args.source)
    net, _ = load_model(run)
    test = list(eval_batches(load_dataset(args.data)))
    before = len(encode_state(src.state_dict(), dense_only=True).data)
    acc_src = accuracy(src, test)
    as_run = read_json(run / "metrics.json")
    acc_run = accuracy(net, test)
    size_run = len(encode_state(net.state_dict(), huffman=True).data)
    halved = round_rest_to_half(net)
    acc_half = accuracy(net, test)
    size_half = len(encode_state(net.state_dict(), huffman=True).data)
    res = {"source_accuracy": acc_src, "size_bytes_before": before,
           "as_written": {"file_bytes": (run / "model.dnz").stat().st_size,
                          "accuracy": as_run["accuracy_after"]},
           "current_codec": {"accuracy": acc_run, "size_bytes_after": size_run,
                             "compression_ratio": before / size_run},
           "current_codec_float16_rest": {"accuracy": acc_half, "size_bytes_after": size_half,
                                          "compression_ratio": before / size_half,
                                          "float16_tensors": len(halved),
                                          "accuracy_drop": acc_src - acc_half}}
    for k, v in res.items():
        print(f"{k}: {v}")
    if args.out:
        write_json(Path(args.out), res)


if __name__ == "__main__":
    main()

"""``directnas compress`` on a net trained on an image folder: with no ``--data`` it reads the
folder the net trained on, at the net's input size (the folder's images are larger)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from directnas.cli.main import main


def _folder(root, size: int = 40, n: int = 24):
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(n):
            x = rng.integers(0, 60, (size, size), dtype=np.uint8) + 150 * c
            Image.fromarray(x.astype(np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


def test_compress_reads_the_training_folder_at_the_nets_size(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    data = _folder(tmp_path / "photos")
    train = tmp_path / "train"
    assert main(["train", "--model", "lenet-5", "--data", str(data), "--input-size", "28",
                 "--epochs", "1", "--batch-size", "16", "--threads", "1", "--repeats", "2",
                 "--out", str(train)]) == 0
    out = tmp_path / "prune"
    assert main(["compress", "--model", str(train), "--method", "prune", "--sparsity", "0.5",
                 "--finetune-epochs", "0", "--threads", "1", "--out", str(out)]) == 0
    cfg = json.loads((out / "compress_config.json").read_text())
    assert cfg["data"] == str(data)  # the training folder, read at 28 px (its images are 40 px)
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["accuracy_after"] <= 1.0 and m["accuracy_before"] > 0.9  # two easy classes

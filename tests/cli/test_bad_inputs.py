"""Malformed inputs: each ends in one line naming problem and fix, exit code 2, and no output.

Every case runs ``directnas.cli.main.main`` in-process inside a sandbox folder that already holds a
previous run's files; the sandbox must be byte-for-byte the same afterwards (nothing written,
nothing overwritten).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from directnas.cli.main import main
from directnas.utils.fileio import torch_save
from directnas.latency.table import LatencyTable
from directnas.nas.searcher import CHECKPOINT
from directnas.space.arch import uniform_arch
from directnas.space.space import SearchSpace
from directnas.training.train_net import TRAIN_CHECKPOINT
from helpers import TINY_SPACE
from helpers import fake_table

torch.set_num_threads(1)
SPACE = SearchSpace.from_dict(TINY_SPACE)
COMMON = ["--threads", "1", "--repeats", "2", "--warmup", "0"]


class Box:
    """The sandbox: a good space, dataset, table and arch, and a run folder with old outputs."""

    def __init__(self, root: Path, idx: Path) -> None:
        self.root = root
        root.mkdir()
        self.space = root / "space.yaml"
        self.space.write_text(yaml.safe_dump(TINY_SPACE))
        self.data = root / "data"
        shutil.copytree(idx, self.data)
        self.table = root / "table.json"
        fake_table(SPACE).save(self.table)
        self.arch = root / "arch.json"
        uniform_arch(SPACE, "k3_e3").save(self.arch)
        self.out = root / "run"
        self.out.mkdir()
        for name in ("latency.json", "search_config.json", "train_config.json", "arch.json"):
            (self.out / name).write_text('{"old": true}\n')

    def search(self, *extra: str, **replace: str) -> list[str]:
        opts = {"--space": str(self.space), "--data": str(self.data), "--out": str(self.out),
                "--latency-table": str(self.table), "--warmup-epochs": "1", "--epochs": "1",
                "--batch-size": "64", **{f"--{k.replace('_', '-')}": v for k, v in replace.items()}}
        return ["search", *[x for kv in opts.items() for x in kv if kv[1] is not None], *extra, *COMMON]

    def train(self, *extra: str, **replace: str) -> list[str]:
        opts = {"--arch": str(self.arch), "--data": str(self.data), "--out": str(self.out),
                "--latency-table": str(self.table), "--train-epochs": "1",
                **{f"--{k.replace('_', '-')}": v for k, v in replace.items()}}
        return ["train", *[x for kv in opts.items() for x in kv if kv[1] is not None], *extra, *COMMON]

    def write_space(self, mutate: Callable[[dict], None]) -> None:
        d = copy.deepcopy(TINY_SPACE)
        mutate(d)
        self.space.write_text(yaml.safe_dump(d))

    def write_table(self, mutate: Callable[[dict], None]) -> None:
        d = json.loads(self.table.read_text())
        mutate(d)
        self.table.write_text(json.dumps(d))

    def write_arch(self, mutate: Callable[[dict], None]) -> None:
        d = json.loads(self.arch.read_text())
        mutate(d)
        self.arch.write_text(json.dumps(d))


def _truncate(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * keep)])


def _good_search_checkpoint(box: Box, **changes: object) -> dict:
    ck = {"kind": "directnas-search", "space_fingerprint": SPACE.fingerprint(),
          "table_digest": LatencyTable.load(box.table).digest(), "table_meta": {"device": "x"},
          "config": {}, "net": {}, "state": {}}
    ck.update(changes)
    return ck


def _png_folder(box: Box, *, corrupt: bool = False, test: bool = True, classes: bool = True) -> None:
    import numpy as np
    from PIL import Image

    root = box.root / "imgs"
    for split in ("train", "test") if test else ("train",):
        (root / split).mkdir(parents=True)
        if not classes:
            continue
        for c in ("a", "b"):
            (root / split / c).mkdir()
            for i in range(3):
                Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(root / split / c / f"{i}.png")
    if corrupt:
        (root / "train" / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    box.data = root


class Payload:
    """Unpickling this calls a function: a weights_only load must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def _foreign_pickle(path: Path) -> None:
    torch.save({"kind": "directnas-search", "x": Payload()}, path)


# (id, setup(box) -> argv, expected part of the message)
CASES: list[tuple[str, Callable[[Box], list[str]], str]] = [
    # datasets
    ("data-missing", lambda b: b.search(data=str(b.root / "nope")), "neither 'fashion-mnist' nor an existing folder"),
    ("data-empty-folder", lambda b: (b.root.joinpath("empty").mkdir(), b.search(data=str(b.root / "empty")))[1],
     "has no IDX files"),
    ("idx-truncated", lambda b: (_truncate(b.data / "train-images-idx3-ubyte.gz"), b.search())[1],
     "is corrupt or truncated"),
    ("idx-bad-magic", lambda b: ((b.data / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04rubbish")),
                                 b.search())[1], "bad magic number"),
    ("idx-count-mismatch", lambda b: (shutil.copy(b.data / "t10k-labels-idx1-ubyte.gz", b.data / "train-labels-idx1-ubyte.gz"),
                                      b.search())[1], "do not match"),
    ("imagefolder-corrupt-png", lambda b: (_png_folder(b, corrupt=True), b.search())[1], "1.png cannot be read"),
    ("imagefolder-no-test", lambda b: (_png_folder(b, test=False), b.search())[1], "needs train/ and test/"),
    ("imagefolder-no-classes", lambda b: (_png_folder(b, classes=False), b.search())[1], "has no class folders"),
    # search spaces
    ("space-file-missing", lambda b: b.search(space=str(b.root / "nope.yaml")), "does not exist"),
    ("space-not-yaml", lambda b: (b.space.write_text("stages: [\n"), b.search())[1], "is not valid YAML"),
    ("space-unknown-key", lambda b: (b.write_space(lambda d: d["stages"][0].update(widht=8)), b.search())[1],
     "unknown key(s) ['widht'] in stages[0]"),
    ("space-unknown-top-key", lambda b: (b.write_space(lambda d: d.update(colour="red")), b.search())[1],
     "unknown key(s) ['colour']"),
    ("space-vanishing-map", lambda b: (b.write_space(lambda d: d["stages"].extend(
        [{"width": 16, "depth": 1, "stride": 2}] * 3)), b.search())[1], "makes the 1x1 feature map vanish"),
    ("space-zero-on-shape-change", lambda b: (b.write_space(lambda d: d["stages"][1].update(candidates=["zero"])),
                                              b.search())[1], "cannot be zero"),
    ("space-bad-op", lambda b: (b.write_space(lambda d: d.update(candidates=["k4_e3"])), b.search())[1],
     "op 'k4_e3' is invalid"),
    # (a space whose input size or number of classes differs from the data's is fitted to the
    # data: tests/test_api.py)
    # latency tables
    ("table-missing-entries", lambda b: (b.write_table(lambda d: d["entries"].pop(sorted(d["entries"])[0])),
                                         b.search())[1], "lacks 1 op(s) of space 'tiny'"),
    ("table-other-space", lambda b: (b.write_table(lambda d: d.update(entries={"mbconv:k3:e3:in9:out9:s1:hw9": {"ms": 1.0}})),
                                     b.search())[1], "run 'directnas profile --space tiny"),
    ("table-other-backend", lambda b: (b.write_table(lambda d: d["meta"].update(backend="onnxruntime-cpu")),
                                       b.search("--backend", "torch-cpu"))[1], "was measured on backend 'onnxruntime-cpu'"),
    ("table-not-json", lambda b: (b.table.write_text("{oops"), b.search())[1], "is not valid JSON"),
    ("table-negative-ms", lambda b: (b.write_table(lambda d: d["entries"][sorted(d["entries"])[0]].update(ms=-1)),
                                     b.search())[1], "needs a non-negative 'ms'"),
    ("target-below-fastest", lambda b: b.search(target_latency="0.01"), "below the fastest net of space 'tiny' ("),
    # options
    ("config-unknown-option", lambda b: (b.root.joinpath("c.yaml").write_text("lrr: 0.1\n"),
                                         b.search(config=str(b.root / "c.yaml")))[1], "unknown option(s) ['lrr']"),
    ("batch-larger-than-data", lambda b: b.search(batch_size="5000"), "lower --batch-size"),
    ("negative-epochs", lambda b: b.search(epochs="-1"), "epochs must be an integer >= 0"),
    ("out-is-a-file", lambda b: b.search(out=str(b.table)), "is a file, not a folder"),
    # checkpoints
    ("existing-run-without-resume", lambda b: (torch_save(b.out / CHECKPOINT, {"kind": "directnas-search"}),
                                               b.search())[1], "pass --resume"),
    ("checkpoint-garbage", lambda b: ((b.out / CHECKPOINT).write_bytes(b"not a checkpoint"), b.search("--resume"))[1],
     "is corrupt, truncated or not written by directnas"),
    ("checkpoint-truncated", lambda b: (torch_save(b.out / CHECKPOINT, _good_search_checkpoint(b, net={"w": torch.ones(999)})),
                                        _truncate(b.out / CHECKPOINT), b.search("--resume"))[2], "is corrupt, truncated"),
    ("checkpoint-pickled-code", lambda b: (_foreign_pickle(b.out / CHECKPOINT), b.search("--resume"))[1],
     "not written by directnas"),
    ("checkpoint-of-training", lambda b: (torch_save(b.out / CHECKPOINT, {"kind": "directnas-train"}),
                                          b.search("--resume"))[1], "is not a directnas search checkpoint"),
    ("checkpoint-other-space", lambda b: (torch_save(b.out / CHECKPOINT, _good_search_checkpoint(b, space_fingerprint="0" * 16)),
                                          b.search("--resume"))[1], "belongs to another search space"),
    ("checkpoint-other-table", lambda b: (torch_save(b.out / CHECKPOINT, _good_search_checkpoint(b, table_digest="0" * 16)),
                                          b.search("--resume"))[1], "was made with another latency table"),
    ("checkpoint-wrong-contents", lambda b: (torch_save(b.out / CHECKPOINT, _good_search_checkpoint(b)),
                                             b.search("--resume"))[1], "does not fit this search"),
    # architectures and training
    ("arch-op-not-candidate", lambda b: (b.write_arch(lambda d: d["layers"][0].update(op="k7_e6")), b.train())[1],
     "is not a candidate there"),
    ("arch-too-few-layers", lambda b: (b.write_arch(lambda d: d["layers"].pop()), b.train())[1],
     "architecture has 3 ops but space 'tiny' has 4"),
    ("arch-not-json", lambda b: (b.arch.write_text("]"), b.train())[1], "is not valid JSON"),
    ("arch-missing", lambda b: b.train(arch=str(b.root / "nope.json")), "does not exist"),
    ("arch-other-dataset", lambda b: (b.write_arch(lambda d: d["space"]["input"].update(channels=3)), b.train())[1],
     "the architecture expects 3 channel(s)"),
    ("train-erasing-out-of-range", lambda b: b.train(train_random_erasing="1.5"),
     "random_erasing must be in [0, 1], got 1.5"),
    ("train-ema-out-of-range", lambda b: b.train(train_ema="1.5"),
     "ema_decay must be in [0, 1), got 1.5"),
    ("train-negative-weight-decay", lambda b: b.train(train_weight_decay="-0.1"),
     "weight_decay must be >= 0, got -0.1"),
    ("train-existing-run-without-resume", lambda b: (torch_save(b.out / TRAIN_CHECKPOINT, {"kind": "directnas-train"}),
                                                     b.train())[1], "pass --resume"),
    ("train-checkpoint-other-model", lambda b: (torch_save(b.out / TRAIN_CHECKPOINT, {"kind": "directnas-train", "model_digest": "x"}),
                                                b.train("--resume"))[1], "was written for another model"),
    ("train-checkpoint-of-search", lambda b: (torch_save(b.out / TRAIN_CHECKPOINT, {"kind": "directnas-search"}),
                                              b.train("--resume"))[1], "is not a directnas training checkpoint"),
    ("train-table-missing-entries", lambda b: (b.write_table(lambda d: d["entries"].pop(sorted(d["entries"])[-1])),
                                               b.train())[1], "lacks 1 op(s)"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_at_least_twenty_cases():
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,setup,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, setup, expected, tmp_path, tiny_idx_dir, monkeypatch, capsys):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "box" / "cache"))
    box = Box(tmp_path / "box", tiny_idx_dir)
    argv = setup(box)
    before = snapshot(box.root)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("directnas: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert ": " in err[len("directnas: error: "):], err  # problem: fix
    assert snapshot(box.root) == before, "the failed command wrote or overwrote files"

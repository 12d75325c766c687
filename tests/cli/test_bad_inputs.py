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

import numpy as np
import pytest
import torch
import yaml

from directnas.cli.main import main
from directnas.data.readers import read_idx
from directnas.models.model_file import ModelFile
from directnas.utils.fileio import torch_save
from directnas.latency.table import LatencyTable
from directnas.nas.searcher import CHECKPOINT
from directnas.pipeline.outdir import LOCK, MARKER
from directnas.space.arch import uniform_arch
from directnas.space.space import SearchSpace
from directnas.training.train_net import TRAIN_CHECKPOINT
from helpers import TINY_SPACE, fake_table, write_idx

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
        self.out = run_folder(root / "run", "search", ("latency.json", "search_config.json",
                                                       "arch.json"))
        self.tout = run_folder(root / "trained", "train", ("train_config.json", "metrics.json"))

    def search(self, *extra: str, **replace: str) -> list[str]:
        opts = {"--space": str(self.space), "--data": str(self.data), "--out": str(self.out),
                "--latency-table": str(self.table), "--warmup-epochs": "1", "--epochs": "1",
                "--batch-size": "64", **{f"--{k.replace('_', '-')}": v for k, v in replace.items()}}
        return ["search", *[x for kv in opts.items() for x in kv if kv[1] is not None], *extra, *COMMON]

    def train(self, *extra: str, **replace: str) -> list[str]:
        opts = {"--arch": str(self.arch), "--data": str(self.data), "--out": str(self.tout),
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


def run_folder(path: Path, command: str, names: tuple[str, ...]) -> Path:
    """A folder ``command`` made earlier: its marker, an idle lock file and old outputs."""
    path.mkdir()
    (path / MARKER).write_text(json.dumps({"command": command}))
    (path / LOCK).write_text("")
    for name in names:
        (path / name).write_text('{"old": true}\n')
    return path


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


def _pngs(box: Box, spec: dict[str, dict[str, int]], name: str = "pngs") -> Path:
    """An image folder: ``spec`` maps a split ("train", "test" or "" for a plain folder) to
    the number of 16x16 grey images of each class."""
    import numpy as np
    from PIL import Image

    root = box.root / name
    for split, classes in spec.items():
        for c, n in classes.items():
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(root / split / c / f"{i}.png")
    box.data = root
    return root


def _idx_labels(box: Box, train: Callable[[np.ndarray], None], test: Callable[[np.ndarray], None]) -> None:
    """The sandbox's IDX data with its labels changed in place by ``train`` / ``test``."""
    for prefix, change in (("train", train), ("t10k", test)):
        path = box.data / f"{prefix}-labels-idx1-ubyte.gz"
        y = read_idx(path).copy()
        change(y)
        write_idx(path, y)


def _model(box: Box) -> Path:
    """A model.pt (untrained weights of the sandbox's arch) in a training folder."""
    if (box.root / "model").is_dir():
        return box.root / "model"
    arch = uniform_arch(SPACE, "k3_e3")
    folder = run_folder(box.root / "model", "train", ("train_config.json",))
    ModelFile.of(arch.build(), name="searched:tiny", arch=arch.to_dict(), input_shape=(1, 16, 16),
                 num_classes=4, mean=(0.5,), std=(0.25,)).save(folder / "model.pt")
    return folder


def _set(d: dict, value: object) -> None:
    d["entries"][sorted(d["entries"])[0]]["ms"] = value


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
                                     b.search())[1], "needs a finite, non-negative 'ms'"),
    ("target-below-fastest", lambda b: b.search(target_latency="0.01"), "below the fastest net of space 'tiny' ("),
    # options
    ("config-unknown-option", lambda b: (b.root.joinpath("c.yaml").write_text("lrr: 0.1\n"),
                                         b.search(config=str(b.root / "c.yaml")))[1], "unknown option(s) ['lrr']"),
    ("batch-larger-than-data", lambda b: b.search(batch_size="5000"), "lower --batch-size"),
    ("negative-epochs", lambda b: b.search(epochs="-1"), "epochs must be an integer >= 0"),
    ("argmax-ignores-target", lambda b: b.search(target_latency="0.6", loss="none", derive="argmax"),
     "loss none and derive argmax ignore the target latency: use --derive constrained"),
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
    ("train-existing-run-without-resume", lambda b: (torch_save(b.tout / TRAIN_CHECKPOINT, {"kind": "directnas-train"}),
                                                     b.train())[1], "pass --resume"),
    ("train-checkpoint-other-model", lambda b: (torch_save(b.tout / TRAIN_CHECKPOINT, {"kind": "directnas-train", "model_digest": "x"}),
                                                b.train("--resume"))[1], "was written for another model"),
    ("train-checkpoint-of-search", lambda b: (torch_save(b.tout / TRAIN_CHECKPOINT, {"kind": "directnas-search"}),
                                              b.train("--resume"))[1], "is not a directnas training checkpoint"),
    ("train-table-missing-entries", lambda b: (b.write_table(lambda d: d["entries"].pop(sorted(d["entries"])[-1])),
                                               b.train())[1], "lacks 1 op(s)"),
]


def _export(b: Box, *extra: str, out: str = "exported") -> list[str]:
    return ["export", str(_model(b)), "--format", "onnx", "--out", str(b.root / out), *extra]


def _run(b: Box, *extra: str) -> list[str]:
    """``directnas run`` without a table: a refusal must come before the device is profiled."""
    return ["run", "--space", str(b.space), "--data", str(b.data), "--out", str(b.root / "r"),
            "--target-latency", "2x", *extra, *COMMON]


def _compress(b: Box, *extra: str) -> list[str]:
    return ["compress", "--model", str(_model(b)), "--data", str(b.data), "--method", "prune",
            "--quick", *extra]


# every input checked before any work (docs/reliability.md, "Checked before any work")
CASES += [
    # numeric options: finite and in range
    *[(f"target-{v}", lambda b, v=v: b.search(target_latency=v), f"{v!r} is not a target latency")
      for v in ("inf", "nan", "0", "-1", "0.5x")],
    ("seed-negative", lambda b: b.search(seed="-1"), "seed must be an integer in [0, 2**32), got -1"),
    ("train-seed-negative", lambda b: b.train(seed="-1"), "seed must be an integer in [0, 2**32)"),
    ("rounds-zero", lambda b: b.search("--rounds", "0"), "--rounds must be >= 1, got 0"),
    ("latency-batch-zero", lambda b: b.search("--latency-batch", "0"), "--latency-batch must be >= 1"),
    ("input-size-zero", lambda b: b.search(input_size="0"), "--input-size must be an integer >= 1"),
    ("train-input-size-zero", lambda b: b.train(input_size="0"), "--input-size must be an integer >= 1"),
    ("train-epochs-zero", lambda b: b.train(train_epochs="0"), "epochs must be >= 1, got 0"),
    ("train-batch-larger-than-data", lambda b: b.train(train_batch_size="100000"),
     "batch size 100000 is larger than the 1200 training images"),
    # no table: the batch is refused before the device is profiled (the cache stays empty)
    ("batch-larger-than-data-before-profiling", lambda b: b.search(latency_table=None, batch_size="5000"),
     "batch size 5000 is larger than"),
    ("run-batch-larger-than-data-before-profiling", lambda b: _run(b, "--batch-size", "5000"),
     "batch size 5000 is larger than"),
    ("run-train-batch-larger-than-data", lambda b: _run(b, "--train-batch-size", "5000"),
     "lower --train-batch-size"),
    ("run-seed-negative", lambda b: _run(b, "--seed", "-1"), "seed must be an integer in [0, 2**32)"),
    ("run-train-epochs-zero", lambda b: _run(b, "--train-epochs", "0"), "epochs must be >= 1"),
    ("compress-seed-negative", lambda b: _compress(b, "--seed", "-1", "--out", str(b.root / "c")),
     "seed must be an integer in [0, 2**32)"),
    ("backend-unknown", lambda b: b.search("--backend", "bogus"), "unknown backend 'bogus': use one of"),
    ("train-backend-unknown", lambda b: b.train("--backend", "bogus"), "unknown backend 'bogus'"),
    ("compress-target-ratio-inf", lambda b: _compress(b, "--target-ratio", "inf", "--out", str(b.root / "c")),
     "--target-ratio inf must be a finite ratio > 1"),
    ("export-latency-batch-zero", lambda b: _export(b, "--latency-batch", "0"),
     "--latency-batch must be an integer >= 1, got 0"),
    ("export-rounds-zero", lambda b: _export(b, "--rounds", "0"), "--rounds must be an integer >= 1"),
    ("export-threads-zero", lambda b: _export(b, "--threads", "0"), "--threads must be an integer >= 1"),
    # the space
    ("space-head-dropout", lambda b: (b.write_space(lambda d: d.update(head={"channels": 32, "dropout": 2.0})),
                                      b.search())[1], "head.dropout must be a probability in [0, 1), got 2.0"),
    ("space-duplicate-candidates", lambda b: (b.write_space(lambda d: d.update(candidates=["k3_e3", "k3_e3", "k5_e3"])),
                                              b.search())[1], "candidates lists k3_e3 more than once"),
    ("space-duplicate-stage-candidates", lambda b: (b.write_space(lambda d: d["stages"][0].update(
        candidates=["k5_e3", "k5_e3"])), b.search())[1], "stages[0].candidates lists k5_e3 more than once"),
    ("space-input-size-zero", lambda b: (b.write_space(lambda d: d["input"].update(size=0)), b.search())[1],
     "input.size must be a positive integer, got 0"),
    # latency tables: finite, non-negative entries, the one at fault named
    ("table-nan-entry", lambda b: (b.write_table(lambda d: _set(d, float("nan"))), b.search())[1],
     "needs a finite, non-negative 'ms', got nan"),
    ("table-inf-entry", lambda b: (b.write_table(lambda d: _set(d, float("inf"))), b.train())[1],
     "needs a finite, non-negative 'ms', got inf"),
    ("latency-import-binary", lambda b: (b.root.joinpath("t.yaml").write_bytes(bytes(range(256)) * 4),
                                         ["latency", "import", "--format", "proxyless-yaml", str(b.root / "t.yaml"),
                                          "--space", str(b.space), "--out", str(b.root / "t.json")])[1],
     "is a binary file, not YAML text"),
    ("latency-import-binary-json", lambda b: (b.root.joinpath("t.bin").write_bytes(bytes(range(256)) * 4),
                                              ["latency", "import", "--format", "ondevice", str(b.root / "t.bin"),
                                               "--out", str(b.root / "t.json")])[1], "is a binary file, not JSON"),
    # the data
    ("data-stray-labels", lambda b: (_idx_labels(b, lambda y: (y.__setitem__(0, 7), y.__setitem__(1, 99), None)[2],
                                                 lambda y: None), b.search())[1],
     "no image has label 4-6, 8-98, yet label(s) 7 (1 image), 99 (1 image) are used"),
    ("data-class-only-in-test", lambda b: (_idx_labels(b, lambda y: y.__setitem__(y == 3, 2), lambda y: None),
                                           b.search())[1], "class(es) 3 of dataset 'data' have test images but no training"),
    ("data-class-not-in-test", lambda b: (_idx_labels(b, lambda y: None, lambda y: y.__setitem__(y == 1, 0)),
                                          b.search())[1], "class(es) 1 of dataset 'data' have no test images"),
    ("data-one-image-class", lambda b: (_idx_labels(b, lambda y: (y.__setitem__(y == 3, 2), y.__setitem__(0, 3), None)[2],
                                                    lambda y: None), b.train())[1],
     "class(es) 3 (1 image) of dataset 'data' have fewer than 2 training images"),
    ("imagefolder-one-image-class", lambda b: (_pngs(b, {"train": {"a": 3, "b": 1}, "test": {"a": 1, "b": 1}}),
                                               b.search())[1], "class folder(s) b hold fewer than 2 images"),
    ("imagefolder-test-lacks-class", lambda b: (_pngs(b, {"train": {"a": 3, "b": 3}, "test": {"a": 1}}),
                                                b.search())[1], "has no images of class(es) b"),
    ("imagefolder-plain-two-image-class", lambda b: (_pngs(b, {"": {"a": 5, "b": 2}}), b.search())[1],
     "class folder(s) b hold fewer than 3 images (one is carved out to test on)"),
    # the output folder
    ("out-foreign-folder", lambda b: ((b.root / "mine").mkdir(), (b.root / "mine" / "arch.json").write_text("mine"),
                                      b.search(out=str(b.root / "mine")))[2],
     "holds files directnas did not write (arch.json): choose a new or empty --out, or pass --force"),
    ("out-of-another-command", lambda b: b.train(out=str(b.out)), "is a folder of 'directnas search', not of 'train'"),
    ("out-under-a-file", lambda b: b.search(out=str(b.table / "sub")), f"lies under the file"),
    ("profile-out-under-a-file", lambda b: ["profile", "--space", str(b.space), "--out", str(b.table / "t.json"), *COMMON],
     "lies under the file"),
    ("export-arch-json", lambda b: ["export", str(b.arch), "--out", str(b.root / "exported")],
     "is an architecture (arch.json), not a trained model: train it first"),
    ("export-out-holds-model", lambda b: (m := _model(b), ["export", str(m), "--out", str(m)])[1],
     "holds the input"),
    ("compress-out-holds-model", lambda b: (m := _model(b), _compress(b, "--out", str(m)))[1], "holds the input"),
    ("compress-out-is-run-folder", lambda b: _compress(b, "--out", str(b.out)),
     "is a folder of 'directnas search', not of 'compress'"),
    ("run-out-is-search-folder", lambda b: [*_run(b)[:6], str(b.out), *_run(b)[7:]],
     "is a folder of 'directnas search', not of 'run'"),
    ("report-out-is-run-folder", lambda b: ["report", str(b.tout), "--out", str(b.tout)],
     "is a folder of 'directnas train', not of 'report'"),
    ("baselines-out-foreign", lambda b: ["baselines", "--models", "lenet-300-100", "--data", str(b.data),
                                         "--out", str(b.root)], "holds files directnas did not write"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_at_least_twenty_cases():
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


def test_the_doc_lists_every_case():
    """docs/reliability.md names every case of this file (and no other)."""
    import re

    from helpers import REPO

    doc = (REPO / "docs" / "reliability.md").read_text()
    table = doc[doc.index("| inputs | cases"):doc.index("Beside it:")]
    assert sorted(re.findall(r"`([a-z0-9][a-z0-9.-]*)`", table)) == sorted(c[0] for c in CASES)
    assert f"lists the {len(CASES)} cases" in (REPO / "README.md").read_text()


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

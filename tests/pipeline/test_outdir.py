"""Output folders: marked by the command that made them, never another's, one process at a time;
the trained model.pt survives every ``compress`` / ``export`` ``--out``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from directnas.cli.main import main
from directnas.errors import UserError
from directnas.pipeline.outdir import LOCK, MARKER, check_out, claimed, folder_command
from helpers import SRC, TINY_SPACE, fake_table
from directnas.space.space import SearchSpace

COMMON = ["--threads", "1", "--repeats", "2", "--warmup", "0"]
HOLD = """import sys, time
from directnas.pipeline.outdir import claimed
with claimed(sys.argv[1], "search"), claimed(sys.argv[2], "run"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def box(tmp_path, tiny_idx_dir, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    table = tmp_path / "table.json"
    fake_table(SearchSpace.from_dict(TINY_SPACE)).save(table)
    fast = tmp_path / "fast.yaml"
    fast.write_text("max_steps: 3\n")
    return {"space": space, "table": table, "data": tiny_idx_dir, "fast": fast, "root": tmp_path}


def _search(b: dict, out: Path, *extra: str) -> list[str]:
    return ["search", "--space", str(b["space"]), "--data", str(b["data"]), "--latency-table",
            str(b["table"]), "--warmup-epochs", "1", "--epochs", "1", "--batch-size", "64",
            "--config", str(b["fast"]), "--out", str(out), *COMMON, *extra]


def _train(b: dict, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "lenet-300-100", "--data", str(b["data"]), "--epochs", "1",
            "--config", str(b["fast"]), "--no-augment", "--out", str(out), *COMMON, *extra]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_new_folder_is_marked_and_reused_by_its_command_only(box, capsys):
    out = box["root"] / "s"
    assert main(_search(box, out)) == 0
    assert json.loads((out / MARKER).read_text()) == {"command": "search"}
    assert (out / LOCK).read_text() == ""  # released: no pid left behind
    assert main(_search(box, out, "--resume")) == 0  # its own command may continue it
    capsys.readouterr()
    for argv in (_train(box, out), _train(box, out, "--force")):  # never another command's
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is a folder of 'directnas search', not of 'train'" in err


def test_force_writes_into_a_foreign_folder_and_keeps_its_files(box, capsys):
    out = box["root"] / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert main(_search(box, out)) == 2
    assert "holds files directnas did not write (notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main(_search(box, out, "--force")) == 0
    assert (out / "notes.txt").read_text() == "my notes" and folder_command(out) == "search"


def test_an_empty_folder_and_a_folder_of_an_earlier_version_are_accepted(box):
    empty = box["root"] / "empty"
    empty.mkdir()
    check_out(empty, "search")
    earlier = box["root"] / "earlier"  # written before markers: named by its config file
    earlier.mkdir()
    (earlier / "train_config.json").write_text("{}")
    assert folder_command(earlier) == "train"
    check_out(earlier, "train")
    with pytest.raises(UserError, match="is a folder of 'directnas train'"):
        check_out(earlier, "search")


def test_a_second_process_is_refused_naming_the_first_and_a_dead_ones_lock_is_free(box, capsys):
    out, run = box["root"] / "busy", box["root"] / "busy-run"
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(run)], env=env,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert main(_search(box, out)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"is in use by another directnas process (pid {holder.pid}, directnas search)" in err
        assert not (out / "search_config.json").exists()
        run_argv = ["run", "--space", str(box["space"]), "--data", str(box["data"]), "--out",
                    str(run), "--target-latency", "2x", *COMMON]
        assert main(run_argv) == 2  # a second run on the same folder, before any work
        assert f"(pid {holder.pid}, directnas run): wait for it to end" in capsys.readouterr().err
        assert sorted(p.name for p in run.iterdir()) == [MARKER, LOCK]
    finally:
        holder.kill()
        holder.wait()
    assert f"pid {holder.pid}" in (out / LOCK).read_text()  # a killed holder's lock file stays
    assert main(_search(box, out)) == 0  # ... but its lock died with it
    assert (out / "arch.json").exists()


def test_one_process_cannot_claim_a_folder_twice(tmp_path):
    with claimed(tmp_path / "f", "run"):
        with pytest.raises(UserError, match=rf"in use by another directnas process \(pid {os.getpid()}, directnas run\)"):
            with claimed(tmp_path / "f", "run"):
                pass
    with claimed(tmp_path / "f", "run"):  # released on the way out
        pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_idx_dir):
    """A run folder holding a trained net (run/train/model.pt)."""
    root = tmp_path_factory.mktemp("trained")
    os.environ.setdefault("DIRECTNAS_NO_PROGRESS", "1")
    run = root / "run"
    run.mkdir()
    (run / MARKER).write_text(json.dumps({"command": "run"}))
    fast = root / "fast.yaml"
    fast.write_text("max_steps: 3\n")
    assert main(_train({"data": tiny_idx_dir, "fast": fast}, run / "train")) == 0
    return run


@pytest.mark.parametrize("command", ["export", "compress"])
def test_the_trained_model_survives_every_out(trained, command, tiny_idx_dir, tmp_path, capsys):
    model = trained / "train" / "model.pt"
    before = _digest(model)
    refused = {trained / "train": "holds the input", trained: "holds the input",
               model: "is a file, not a folder", trained / "train" / "model.pt" / "x": "lies under the file"}
    for out, message in refused.items():
        argv = (["export", str(trained / "train"), "--format", "onnx", "--rounds", "1", "--out", str(out)]
                if command == "export" else
                ["compress", "--model", str(trained / "train"), "--data", str(tiny_idx_dir),
                 "--method", "prune", "--quick", "--out", str(out)])
        assert main(argv) == 2, out
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert _digest(model) == before
    # a folder of its own is written, the model stays as it was
    if command == "export":
        argv = ["export", str(trained / "train"), "--format", "onnx", "--rounds", "1", "--out",
                str(tmp_path / "e")]
    else:
        argv = ["compress", "--model", str(model), "--data", str(tiny_idx_dir), "--method", "prune",
                "--quick", "--finetune-epochs", "0", "--out", str(tmp_path / "c")]
    assert main(argv) == 0, capsys.readouterr().err
    assert _digest(model) == before and folder_command(Path(argv[-1])) == command

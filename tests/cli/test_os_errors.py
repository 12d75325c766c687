"""Faults of the machine and of the runtimes end in one ``directnas: error:`` line with exit code
2 (disk full, read-only filesystem, no permission, an exporter that cannot take a net), and bad
data handed to the library is one ``UserError`` line."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
import yaml

import directnas
from directnas import runtimes
from directnas.cli.main import main
from directnas.errors import UserError
from directnas.pipeline import outdir
from directnas.space.arch import uniform_arch
from directnas.space.space import SearchSpace
from directnas.utils import fileio
from helpers import TINY_SPACE, fake_table

COMMON = ["--threads", "1", "--repeats", "2", "--warmup", "0"]
SPACE = SearchSpace.from_dict(TINY_SPACE)


@pytest.fixture
def argv(tmp_path, tiny_idx_dir, monkeypatch):
    """``directnas train`` of a small arch on the tiny data into ``tmp_path/out``."""
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    arch = tmp_path / "arch.json"
    uniform_arch(SPACE, "k3_e3").save(arch)
    table = tmp_path / "table.json"
    fake_table(SPACE).save(table)
    fast = tmp_path / "fast.yaml"
    fast.write_text("max_steps: 2\n")
    return ["train", "--arch", str(arch), "--data", str(tiny_idx_dir), "--latency-table",
            str(table), "--epochs", "1", "--config", str(fast), "--out", str(tmp_path / "out"),
            *COMMON]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The error line, after the log lines of the work done before the fault."""
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if "error" in line]
    assert errors == lines[-1:] and lines[-1].startswith("directnas: error: "), lines
    return lines[-1]


@pytest.mark.parametrize("command,victim", [("train", "model.pt"), ("search", "arch.json"),
                                            ("export", "model.onnx")])
def test_a_full_disk_in_each_command_is_one_line(argv, monkeypatch, capsys, command, victim):
    """The disk fills up as the command writes its main output."""
    if command == "search":
        argv = ["search", "--space", str(Path(argv[2]).with_name("space.yaml")), *argv[3:],
                "--warmup-epochs", "1"]
        Path(argv[2]).write_text(yaml.safe_dump(TINY_SPACE))
    elif command == "export":
        assert main(argv) == 0
        argv = ["export", argv[argv.index("--out") + 1], "--format", "onnx", "--rounds", "1",
                "--out", str(Path(argv[2]).with_name("exported"))]
    replace = os.replace

    def failing(src: str, dst: str) -> None:
        if Path(dst).name == victim:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", failing)
    capsys.readouterr()
    assert main(argv) == 2
    assert f"{victim}: the disk is full (ENOSPC): free disk space" in _one_line(capsys)


@pytest.mark.parametrize("code,meaning", [(errno.ENOSPC, "the disk is full (ENOSPC): free disk space"),
                                          (errno.EROFS, "the filesystem is read-only (EROFS)"),
                                          (errno.EACCES, "permission denied (EACCES)"),
                                          (errno.EDQUOT, "the disk quota is exceeded (EDQUOT)")])
def test_a_failing_write_after_the_work_is_one_line(argv, monkeypatch, capsys, code, meaning):
    """The trained model cannot be written: one line naming the file, no temp file left."""
    replace = os.replace

    def failing(src: str, dst: str) -> None:
        if Path(dst).name == "model.pt":
            raise OSError(code, os.strerror(code))
        replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", failing)
    assert main(argv) == 2
    err = _one_line(capsys)
    assert f"cannot write {Path(argv[argv.index('--out') + 1]) / 'model.pt'}: {meaning}" in err
    assert not list(Path(argv[argv.index("--out") + 1]).glob(".*.tmp"))


def test_torch_save_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    """torch's own writer reports a full disk as a RuntimeError; ``torch_save`` writes the bytes
    itself, so the errno reaches the message."""

    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(UserError, match=r"cannot write .*ck\.pt: the disk is full \(ENOSPC\)"):
        fileio.torch_save(tmp_path / "ck.pt", {"w": torch.zeros(10)})
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_or_unwritable_out_is_refused_before_any_work(argv, monkeypatch, capsys):
    real = os.statvfs

    class ReadOnly:
        def __init__(self, st: os.statvfs_result) -> None:
            self.f_flag = st.f_flag | os.ST_RDONLY

    monkeypatch.setattr(outdir.os, "statvfs", lambda p: ReadOnly(real(p)))
    assert main(argv) == 2
    assert "is on a read-only filesystem (EROFS): choose an --out on a writable" in _one_line(capsys)
    monkeypatch.setattr(outdir.os, "statvfs", real)
    monkeypatch.setattr(outdir.os, "access", lambda p, mode: False)
    assert main(argv) == 2
    assert "is not writable (permission denied, EACCES)" in _one_line(capsys)
    assert not Path(argv[argv.index("--out") + 1]).exists()


def test_an_os_error_anywhere_reaches_the_user_as_one_line(argv, monkeypatch, capsys):
    def export(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/x/model.onnx")

    monkeypatch.setattr(directnas.api, "export", export)
    assert main(["export", "somewhere", "--out", "elsewhere"]) == 2
    assert "/x/model.onnx: the disk is full (ENOSPC): free disk space" in _one_line(capsys)


class Spectrum(torch.nn.Module):
    """A net with an op ONNX cannot express (an FFT)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft(x.flatten(1)).abs()[:, :3]


def test_an_op_the_runtime_cannot_take_is_named(tmp_path):
    with pytest.raises(UserError) as e:
        directnas.measure(Spectrum(), (1, 8, 8), backend="onnxruntime-cpu", repeats=2, rounds=1)
    assert "runtime onnxruntime-cpu cannot take the op aten::fft_rfft" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="cannot take the op aten::fft_rfft"):
        runtimes.by_format("onnx").export(Spectrum(), (1, 1, 8, 8), tmp_path / "model")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("images,labels,message", [
    (torch.zeros(0, 1, 16, 16), torch.zeros(0, dtype=torch.long), "data is empty"),
    (torch.full((8, 1, 16, 16), float("nan")), torch.arange(8) % 4, "pixel(s) are NaN"),
    (torch.rand(8, 1, 16, 16) * 2, torch.arange(8) % 4, "float images must lie in [0, 1]"),
    (torch.rand(8, 1, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1, 2, 9]), "no image has label 4-8"),
])
def test_bad_tensors_to_the_library_are_one_line(images, labels, message, tmp_path):
    arch = uniform_arch(SPACE, "k3_e3")
    calls = [lambda: directnas.train(arch, (images, labels), epochs=1, out=tmp_path / "t",
                                     measure_latency=False),
             lambda: directnas.search(SPACE, (images, labels), table=fake_table(SPACE),
                                      out=tmp_path / "s")]
    for call in calls:
        with pytest.raises(UserError) as e:
            call()
        assert message in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs,message", [
    ({"target_latency": float("inf")}, "is not a target latency"),
    ({"target_latency": "nan"}, "is not a target latency"),
    ({"seed": -1}, "seed must be an integer"),
    ({"backend": "bogus"}, "unknown backend 'bogus'"),
    ({"input_size": 0}, "--input-size must be an integer >= 1"),
    ({"protocol": {"rounds": 0}}, "rounds must be an integer >= 1"),
    ({"batch_size": 5000}, "batch size 5000 is larger than"),
])
def test_bad_options_to_the_library_write_nothing(kwargs, message, tmp_path, tiny_idx_dir):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace("[", r"\[")):
        directnas.search(SPACE, str(tiny_idx_dir), table=fake_table(SPACE), out=tmp_path / "s",
                         **{"target_latency": 1.0, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_a_space_yaml_with_bad_values_is_one_line(tmp_path):
    d = {**TINY_SPACE, "head": {"channels": 32, "dropout": -0.5}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(UserError, match=r"head.dropout must be a probability in \[0, 1\)"):
        directnas.load_space(str(tmp_path / "s.yaml"))

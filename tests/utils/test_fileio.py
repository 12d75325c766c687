"""Atomic writes: the file appears whole or not at all, readable like any file the user writes."""

from __future__ import annotations

import os
import stat

import pytest

from directnas.utils.fileio import FILE_MODE, write_bytes, write_json, write_text


@pytest.mark.parametrize("write", [lambda p: write_bytes(p, b"x"), lambda p: write_text(p, "x"),
                                   lambda p: write_json(p, {"x": 1})])
def test_outputs_are_written_with_the_umask_mode_not_the_temp_files_0600(tmp_path, write):
    path = tmp_path / "out" / "file"
    write(path)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == FILE_MODE and mode & stat.S_IRGRP  # 0644 under the usual umask 022
    assert [p.name for p in path.parent.iterdir()] == ["file"]  # no temp file left


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.bin"

    with pytest.raises(TypeError):
        write_bytes(path, object())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_checkpoints_of_older_versions_with_a_torch_version_in_them_load(tmp_path):
    """0.2.0 saved the latency table's metadata with torch.__version__ unconverted (a
    TorchVersion): its search checkpoints still load, with weights_only kept on."""
    import torch

    from directnas.utils.fileio import torch_load

    path = tmp_path / "old.pt"
    torch.save({"table_meta": {"torch": torch.__version__}, "net": {"w": torch.ones(2)}}, path)
    ck = torch_load(path)
    assert ck["table_meta"]["torch"] == str(torch.__version__) and ck["net"]["w"].sum() == 2

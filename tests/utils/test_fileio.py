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

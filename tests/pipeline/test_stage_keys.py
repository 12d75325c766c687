"""Stage keys: options that change a stage's result are compared on resume, the compute threads
are not (a folder made with another thread count, or by 0.2.0 which recorded them, resumes)."""

import pytest

from directnas.errors import UserError
from directnas.pipeline.stages import enter_stage, options_key


def test_threads_do_not_key_a_stage_but_other_options_do(tmp_path):
    assert enter_stage(tmp_path, {"lr": 0.1, "threads": 1}, done=False) is False  # 0.2.0's key
    assert enter_stage(tmp_path, options_key({"lr": 0.1, "threads": 2}), done=False) is False
    assert enter_stage(tmp_path, options_key({"lr": 0.1}), done=True) is True
    with pytest.raises(UserError, match="other options.*lr"):
        enter_stage(tmp_path, options_key({"lr": 0.2}), done=False)
    assert "threads" not in options_key({"lr": 0.1, "threads": 2})

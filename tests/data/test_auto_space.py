"""The space chosen from the data when none is named: the demo's preset for the demo's data, a
space fitted to the images' size for a folder of photos; one line for a named space far from
the images' size; the chosen space saved in the run folder, reusable."""

from __future__ import annotations

import pytest
import torch

from directnas.data.auto_space import choose_space, image_size
from directnas.errors import UserError
from directnas.space.space import load_space
from helpers import write_photo_folder


@pytest.fixture
def photos96(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    return write_photo_folder(tmp_path / "photos96", side=96, per_class=12)


def test_no_data_keeps_the_demo_preset():
    choice = choose_space(None, "fashion-mnist")
    assert choice.space == load_space("fashion-mnist") and not choice.fitted
    assert choice.line(choice.space) is None
    assert choose_space("auto", "fashion-mnist").space.name == "fashion-mnist"


def test_idx_folders_keep_the_demo_preset(tiny_idx_dir):
    assert choose_space(None, tiny_idx_dir).space.name == "fashion-mnist"


def test_a_96px_folder_gets_a_96px_space_with_a_small_last_map(photos96):
    sides = image_size(photos96)
    assert sides.median == 96 and sides.count == 24
    choice = choose_space(None, photos96, max_input_size=128)
    space = choice.space
    assert choice.fitted and space.input_size == 96 and 3 <= space.last_hw <= 7
    line = choice.line(space)
    assert line.startswith(f"space fitted to the images of {photos96} (median side 96 px of 24 "
                           "images)") and "\n" not in line
    # the default cap, the CPU budget: 64 px, said in the line
    assert choose_space(None, photos96).space.input_size == 64
    assert "capped at 64 px (--max-input-size raises it)" in choose_space(None, photos96).reason
    assert choose_space(None, photos96, input_size=112).space.input_size == 112


def test_a_20px_folder_gets_a_small_space(tmp_path):
    root = write_photo_folder(tmp_path / "p20", side=20, per_class=4, grey=True)
    space = choose_space(None, root).space
    assert space.input_size == 24 and space.stem_stride == 1 and 3 <= space.last_hw <= 4
    assert len(space.layers) == 16 and space.head_channels == 512


def test_tensors_are_fitted_by_their_shape():
    x = torch.zeros(8, 3, 64, 64, dtype=torch.uint8)
    assert choose_space(None, (x, torch.zeros(8, dtype=torch.long))).space.input_size == 64


def test_a_named_preset_far_from_the_images_says_what_the_net_sees(photos96):
    line = choose_space("cifar", photos96).reason
    assert line.startswith("space cifar: the net sees 32x32 px, but the images of") \
        and "about 96 px" in line and "photos-64" in line and "\n" not in line
    assert choose_space("photos-96", photos96).reason is None
    assert choose_space("photos-128", photos96).reason is None  # within 2x
    assert choose_space("cifar", photos96, input_size=96).reason is None
    with pytest.raises(UserError, match="max input size 4"):
        choose_space(None, photos96, max_input_size=4)


@pytest.mark.slow
def test_the_run_folder_keeps_the_fitted_space_and_reuses_it(photos96, tmp_path, capsys):
    """A tiny ``directnas run`` on a 96 px folder with no space named: the fitted space is
    printed in one line, saved as space.yaml, searched and trained; ``--space RUN/space.yaml``
    on the same data is the same space (the same fingerprint in the stage keys); a run folder
    made with another space is refused."""
    import json

    from directnas import api
    from directnas.cli.main import main
    from directnas.space.fitted import fitted_space
    from directnas.space.space import save_space
    from helpers import fake_table

    space = fitted_space(96, num_classes=2)  # the data's 2 classes
    table = tmp_path / "table.json"
    fake_table(space).save(table)

    def argv(command, out, *extra):
        return [command, "--data", str(photos96), "--out", str(out), "--latency-table", str(table),
                "--quick", "--batch-size", "8", "--threads", "1", "--repeats", "2", "--warmup",
                "1", "--rounds", "1", *extra]

    out = tmp_path / "run"
    assert main(argv("run", out, "--train-batch-size", "8", "--no-tensorboard",
                     "--max-input-size", "128")) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.startswith("space fitted to")]
    assert len(lines) == 1 and "photos-96: 96x96x3" in lines[0] and "2 classes" in lines[0]
    saved = load_space(out / "space.yaml")
    assert saved.fingerprint() == space.fingerprint()
    key = json.loads((out / "search" / "stage.json").read_text())
    assert key["space_fingerprint"] == saved.fingerprint() and key["input_size"] == 96
    trained = json.loads((out / "train" / "train_config.json").read_text())
    assert trained["input_shape"] == [3, 96, 96]
    again = tmp_path / "again"  # the saved space, named: the same space searched
    assert main(argv("search", again, "--space", str(out / "space.yaml"))) == 0
    assert "space fitted to" not in capsys.readouterr().out
    assert load_space(again / "space.yaml").fingerprint() == saved.fingerprint()
    arch = json.loads((again / "arch.json").read_text())
    assert load_space(out / "space.yaml").to_dict() == arch["space"]
    save_space(load_space("photos-64"), out / "space.yaml")
    with pytest.raises(UserError, match="made with another space"):
        api.run(None, photos96, out=out, table=table, search={"quick": True, "batch_size": 8},
                train={"quick": True, "batch_size": 8})

"""The fitted-space rule: input size from the images, strides to a last map of a few pixels,
stride-2 groups added with the resolution; the photos presets are the rule at their sizes."""

from __future__ import annotations

import pytest

from directnas.space.fitted import (MAX_INPUT_SIZE, fitted_input_size, fitted_space,
                                    fitted_space_dict, space_line)
from directnas.space.space import SearchSpace, load_space, save_space


@pytest.mark.parametrize("side, size", [(100, 64), (300, MAX_INPUT_SIZE), (64, 64), (60, 64),
                                        (20, 24), (28, 32), (32, 32), (5, 16), (120, 64)])
def test_input_size_is_the_median_side_rounded_and_capped(side, size):
    assert MAX_INPUT_SIZE == 64  # the CPU budget's cap
    assert fitted_input_size(side) == size
    uncapped = {100: 96, 120: 128, 300: 304}
    if side in uncapped:
        assert fitted_input_size(side, cap=None) == uncapped[side]


def test_the_cap_can_be_raised_or_lifted():
    assert fitted_input_size(300, cap=256) == 256
    assert fitted_input_size(300, cap=None) == 304


@pytest.mark.parametrize("size", [16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224,
                                  256, 320, 448])
def test_last_map_is_a_few_pixels_at_every_size(size):
    space = fitted_space(size)
    assert 3 <= space.last_hw <= 7 or (size == 16 and space.last_hw == 4)
    assert space.input_size == size and space.num_archs() > 1


def test_depth_and_width_grow_with_the_resolution():
    layers = [len(fitted_space(s).layers) for s in (16, 24, 64, 72, 96, 224)]
    assert layers == [8, 16, 16, 21, 21, 21]
    assert fitted_space(64).head_channels == 512 and fitted_space(96).head_channels == 1280
    assert fitted_space(32).stem_stride == 1 and fitted_space(40).stem_stride == 2


def test_at_224_px_the_rule_is_the_imagenet_mobile_preset():
    d = fitted_space_dict(224, num_classes=1000, name="imagenet-mobile")
    assert SearchSpace.from_dict(d).fingerprint() == load_space("imagenet-mobile").fingerprint()


@pytest.mark.parametrize("size", [64, 96, 128, 160])
def test_photos_presets_are_the_rule_at_their_size(size):
    preset = load_space(f"photos-{size}")
    assert preset.fingerprint() == fitted_space(size).fingerprint()


def test_a_saved_fitted_space_reloads_to_the_same_fingerprint(tmp_path):
    space = fitted_space(96, channels=1, num_classes=2)
    path = save_space(space, tmp_path / "space.yaml", note="fitted to test images")
    assert load_space(path).fingerprint() == space.fingerprint()
    assert "fitted to test images" in path.read_text()


def test_space_line_names_the_layout():
    line = space_line(fitted_space(96))
    assert line.startswith("photos-96: 96x96x3, stem 32/2") and "-> 3x3" in line
    assert "21 searchable layers" in line and "\n" not in line

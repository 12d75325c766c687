"""Budgets scaled to the data size: epochs of a small dataset count at least a nominal number
of weight steps; large data keeps its epochs; given epochs are kept."""

from __future__ import annotations

import torch

from directnas.data.datasets import Dataset, ImageData
from directnas.nas.searcher import SearchConfig
from directnas.pipeline.search import fit_search_epochs
from directnas.training.budget import scaled_epochs, steps_per_pass, train_epochs
from directnas.training.train_net import TrainConfig, resolve_epochs


def _data(n: int) -> Dataset:
    x = torch.zeros(n, 1, 8, 8, dtype=torch.uint8)
    train = ImageData(x, torch.zeros(n, dtype=torch.long), 2)
    return Dataset("d", train, ImageData(x[:0], train.labels[:0], 2), (0.5,), (0.25,))


def test_epochs_scale_with_the_data_size():
    assert train_epochs(60000, 128) == 20  # Fashion-MNIST: 468 steps a pass
    assert train_epochs(1650, 128) == 125  # 12 steps a pass: 125 x 12 = 1,500 updates
    assert train_epochs(200, 128) == 1500  # one step a pass
    small, large = train_epochs(2000, 128), train_epochs(20000, 128)
    assert small * steps_per_pass(2000, 128) >= 1500 and large == 20
    assert scaled_epochs(2, 11, 330) == 60 and scaled_epochs(2, 400, 330) == 2
    assert steps_per_pass(1000, 100, world=2) == 5 and steps_per_pass(1000, 10, max_steps=3) == 3


def test_training_epochs_given_are_kept():
    assert resolve_epochs(TrainConfig(), 1650).epochs == 125
    assert resolve_epochs(TrainConfig(epochs=3), 1650).epochs == 3
    assert resolve_epochs(TrainConfig(), 60000).epochs == 20
    assert resolve_epochs(TrainConfig(max_steps=5), 1650).epochs == 20  # capped epochs: short


def test_search_epochs_scale_unless_given_or_quick(tmp_path):
    cfg = SearchConfig()
    fit_search_epochs(cfg, _data(1650), quick=False, given={})
    # 1,485 training images after the 10 % validation split: 11 steps a pass
    assert (cfg.warmup_epochs, cfg.epochs) == (30, 30)  # the search: 1 epoch of 330 steps
    cfg = SearchConfig()
    fit_search_epochs(cfg, _data(60000), quick=False, given={})
    assert (cfg.warmup_epochs, cfg.epochs) == (1, 2)
    for kw in ({"given": {"epochs": 2}}, {"given": {}, "quick": True}):
        cfg = SearchConfig()
        fit_search_epochs(cfg, _data(1650), **{"quick": False, **kw})
        assert (cfg.warmup_epochs, cfg.epochs) == (1, 2)
    (tmp_path / "s.yaml").write_text("warmup_epochs: 1\n")
    cfg = SearchConfig()
    fit_search_epochs(cfg, _data(1650), quick=False, given={}, config_file=tmp_path / "s.yaml")
    assert (cfg.warmup_epochs, cfg.epochs) == (1, 2)


def test_small_data_shares_the_candidates_weights_unless_given(tmp_path):
    cfg = SearchConfig()
    fit_search_epochs(cfg, _data(1650), quick=False, given={})
    assert cfg.weight_sharing == "full"
    cfg = SearchConfig()  # given epochs change the budget, not the sharing
    fit_search_epochs(cfg, _data(1650), quick=False, given={"epochs": 2})
    assert cfg.weight_sharing == "full" and cfg.epochs == 2
    for data, given in ((_data(60000), {}), (_data(1650), {"weight_sharing": "none"})):
        cfg = SearchConfig()
        fit_search_epochs(cfg, data, quick=False, given=given)
        assert cfg.weight_sharing == "none"
    (tmp_path / "s.yaml").write_text("weight_sharing: kernel\n")
    cfg = SearchConfig(weight_sharing="kernel")
    fit_search_epochs(cfg, _data(1650), quick=False, given={}, config_file=tmp_path / "s.yaml")
    assert cfg.weight_sharing == "kernel"
    cfg = SearchConfig()
    fit_search_epochs(cfg, _data(1650), quick=True, given={})
    assert cfg.weight_sharing == "none"


def test_a_raised_max_steps_does_not_make_large_data_small():
    """CIFAR-10's 45,000 search images (351 steps a pass) with --max-steps 660: the epochs
    are lengthened as asked, but the data is not treated as small (no sharing, two search
    epochs); 1,650 images stay small data under any --max-steps."""
    cfg = SearchConfig(max_steps=660)
    fit_search_epochs(cfg, _data(50000), quick=False, given={})
    assert cfg.weight_sharing == "none"
    assert (cfg.warmup_epochs, cfg.epochs) == (2, 4)  # passes of 351 steps: >= 660, 1,320
    for max_steps in (100, 660):
        cfg = SearchConfig(max_steps=max_steps)
        fit_search_epochs(cfg, _data(1650), quick=False, given={})
        assert cfg.weight_sharing == "full" and cfg.epochs == cfg.warmup_epochs

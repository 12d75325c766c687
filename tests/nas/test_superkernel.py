"""Weight-shared candidates: each is exactly the MBConv made of its slices, and they share weights."""

import pytest
import torch

from directnas.data.readers import load_dataset
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.utils.seeding import seed_everything
from directnas.nas.superkernel import SharedPath
from directnas.nas.supernet import Supernet
from directnas.space.ops import MBConv, parse_op
from directnas.space.space import SearchSpace
from helpers import two_cost_table as fake_table


def _as_mbconv(shared, j, c_in, c_out, stride):  # noqa: ANN001
    """A standalone MBConv holding candidate j's slices of the shared weights and its own BNs."""
    s = shared.specs[j]
    mid, a = c_in * s.expand, (shared.k_max - s.kernel) // 2
    m = MBConv(c_in, c_out, kernel=s.kernel, expand=s.expand, stride=stride, residual=False)
    bn_e, bn_d, bn_p = shared.bn[j]
    with torch.no_grad():
        m.expand[0].weight.copy_(shared.expand_w[:mid])
        m.depthwise[0].weight.copy_(shared.dw_w[:mid, :, a:a + s.kernel, a:a + s.kernel])
        m.project[0].weight.copy_(shared.proj_w[:, :mid])
        for dst, src in ((m.expand[1], bn_e), (m.depthwise[1], bn_d), (m.project[1], bn_p)):
            dst.load_state_dict(src.state_dict())
    return m.eval()


@pytest.mark.parametrize("mode", ["full", "kernel"])
def test_every_shared_candidate_is_the_mbconv_of_its_slices(tiny_space_dict, mode):
    torch.manual_seed(0)
    space = SearchSpace.from_dict(tiny_space_dict)  # candidates k3_e3, k5_e3, k3_e6 (+ zero)
    net = Supernet(space, share_weights=mode)
    for m in net.mixed:  # non-trivial BN statistics
        for bn in m.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
    net.eval()
    for m in net.mixed:
        layer = m.layer
        # full: one block; kernel: e3's two kernels share one, the lone e6 keeps its own MBConv
        assert len(m.shared) == 1
        x = torch.randn(3, layer.c_in, layer.hw_in, layer.hw_in)
        for i, name in enumerate(m.names):
            if name == "zero":
                continue
            path = m.paths[i]
            if mode == "kernel" and name == "k3_e6":
                assert isinstance(path, MBConv)
                continue
            shared = path._shared[0]
            assert isinstance(path, SharedPath) and shared.specs[path.j] == parse_op(name)
            ref = _as_mbconv(shared, path.j, layer.c_in, layer.c_out, layer.stride)
            torch.testing.assert_close(path(x), ref(x), rtol=1e-5, atol=1e-5)


def test_shared_candidates_train_the_same_weights(tiny_space_dict):
    torch.manual_seed(0)
    space = SearchSpace.from_dict(tiny_space_dict)
    plain, shared = Supernet(space), Supernet(space, share_weights="full")
    n = lambda net: sum(p.numel() for p in net.weight_parameters())  # noqa: E731
    assert n(shared) < n(plain)
    m = shared.mixed[0]
    layer = m.layer
    small = m.names.index("k3_e3")  # kernel 3 of 5, 3 of 6 expansion channels
    m.set_active([small])
    m(torch.randn(2, layer.c_in, layer.hw_in, layer.hw_in)).sum().backward()
    (block,) = m.shared
    g = block.dw_w.grad
    mid = layer.c_in * 3
    assert g[:mid, :, 1:4, 1:4].abs().sum() > 0  # the centre taps of the used channels learn
    assert g[mid:].abs().sum() == 0 and g[:, :, 0].abs().sum() == 0 and g[:, :, :, 4].abs().sum() == 0
    assert block.proj_w.grad[:, mid:].abs().sum() == 0
    # the same tensor serves k5_e3: what k3_e3 learnt, k5_e3 uses
    k5 = m.paths[m.names.index("k5_e3")]
    assert k5._shared[0] is block and len(list(k5.parameters())) == 0


def test_kernel_sharing_groups_by_expansion():
    from directnas.nas.superkernel import share_groups

    specs = [parse_op(n) for n in ("k3_e3", "k3_e6", "k5_e3", "k5_e6", "k7_e3", "k7_e6", "k3_e6_g2")] + [None]
    assert share_groups(specs, "none") == []
    assert share_groups(specs, "full") == [[0, 1, 2, 3, 4, 5]]
    assert share_groups(specs, "kernel") == [[0, 2, 4], [1, 3, 5]]


@pytest.mark.parametrize("paths", ["probs", "uniform"])
def test_a_weight_shared_search_runs_resumes_and_derives(tiny_space_dict, tiny_idx_dir, tmp_path, paths):
    space = SearchSpace.from_dict(tiny_space_dict)
    cfg = SearchConfig(warmup_epochs=1, epochs=1, batch_size=32, valid_size=200, max_steps=4,
                       arch_every=1, target_latency_ms=12.0, arch_lr=0.05, threads=1,
                       eval_batches=2, weight_sharing="full", weight_paths=paths)
    data = load_dataset(tiny_idx_dir)
    seed_everything(cfg.seed)
    s = Searcher(space, data, fake_table(space), cfg, tmp_path / "a")
    arch = s.run()
    assert len(arch.ops) == len(space.layers)
    assert 0.0 <= s.supernet_accuracy(arch, max_batches=2, calib_batches=2) <= 1.0
    # the checkpoint holds the shared weights and loads into a fresh shared searcher
    r = Searcher(space, data, fake_table(space), cfg, tmp_path / "a")
    assert r.resume()
    for a, b in zip(s.net.state_dict().values(), r.net.state_dict().values()):
        assert torch.equal(a, b)


def test_bad_weight_paths_is_one_line(tiny_space_dict, tiny_idx_dir, tmp_path):
    from directnas.errors import UserError

    space = SearchSpace.from_dict(tiny_space_dict)
    with pytest.raises(UserError, match="weight_paths"):
        Searcher(space, load_dataset(tiny_idx_dir), fake_table(space),
                 SearchConfig(weight_paths="fair", threads=1), tmp_path)


def test_cli_flags_reach_the_search_config(tmp_path, tiny_idx_dir, tiny_space_yaml, monkeypatch):
    import json

    from directnas.cli.main import main

    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    rc = main(["search", "--space", str(tiny_space_yaml), "--data", str(tiny_idx_dir), "--out", str(out),
               "--warmup-epochs", "1", "--epochs", "1", "--batch-size", "64", "--target-latency", "5",
               "--weight-sharing", "kernel", "--weight-paths", "uniform", "--threads", "1",
               "--repeats", "5", "--warmup", "1"])
    assert rc == 0
    cfg = json.loads((out / "search.json").read_text())["config"]
    assert cfg["weight_sharing"] == "kernel" and cfg["weight_paths"] == "uniform"

"""Every registered gate strategy through the searcher; REINFORCE's sign; Gumbel's annealing."""

import json

import pytest
import torch

import directnas.nas.strategies_reinforce as rl
from directnas.cli.main import main
from directnas.data.readers import load_dataset
from directnas.latency.measure import Protocol
from directnas.nas.gates import STRATEGIES, BinaryGates, GumbelSoftmax, Reinforce, make_strategy
from directnas.nas.loss import HardwareLoss
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.utils.seeding import seed_everything
from directnas.nas.supernet import Supernet
from directnas.space.arch import Arch
from directnas.space.space import SearchSpace
from helpers import two_cost_table as fake_table


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_searches_moves_alpha_and_derives(name, tiny_space_dict, tiny_idx_dir, tmp_path):
    space = SearchSpace.from_dict(tiny_space_dict)
    cfg = SearchConfig(warmup_epochs=1, epochs=2, batch_size=32, valid_size=200, max_steps=4,
                       arch_every=1, strategy=name, target_latency_ms=12.0, arch_lr=0.05,
                       threads=1, history_every=1,
                       # live timing feeds a reward term that loss none leaves out (refused)
                       loss="hinge" if name == "reinforce-live" else "none")
    seed_everything(cfg.seed)
    s = Searcher(space, load_dataset(tiny_idx_dir), fake_table(space), cfg, tmp_path)
    alpha0 = [a.detach().clone() for a in s.net.arch_parameters()]
    arch = s.run()
    assert s.strategy.name == name
    assert s.state.alpha_steps == 8 and s.state.step == 12
    moved = max(
        float((a - b).detach().abs().max()) for a, b in zip(s.net.arch_parameters(), alpha0)
    )
    assert moved > 1e-3
    assert all(torch.isfinite(a).all() for a in s.net.arch_parameters())
    assert isinstance(arch, Arch) and len(arch.ops) == len(space.layers)
    assert arch.meta["strategy"] == name and arch.meta["predicted_latency_ms"] > 0
    assert arch.build()(torch.randn(2, 1, 16, 16)).shape == (2, 4)
    # the strategy leaves a plain single-path supernet behind (no soft weights / gates)
    assert all(m.weights is None and m.gates is None and len(m.active) == 1 for m in s.net.mixed)
    summary = s.write_outputs(arch, wall_s=1.0)
    assert 0.0 <= summary["supernet_valid_accuracy"] <= 1.0


def _constant_accuracy_net(space: SearchSpace) -> tuple[Supernet, torch.Tensor, torch.Tensor]:
    """A supernet whose classifier always says class 0: every arch has accuracy 1 on y = 0."""
    net = Supernet(space)
    with torch.no_grad():
        net.head.classifier.weight.zero_()
        net.head.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    return net, torch.randn(8, 1, 16, 16), torch.zeros(8, dtype=torch.long)


def test_reinforce_step_raises_the_prob_of_an_arch_rewarded_above_baseline(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    for baseline, sign in ((0.0, 1), (10.0, -1)):  # reward 1.0: above / below the baseline
        net, x, y = _constant_accuracy_net(space)
        seen: list[Arch] = []
        strat = Reinforce(samples=1, latency_fn=lambda a: seen.append(a) or 3.0)
        strat.baseline = baseline
        opt = torch.optim.SGD(net.arch_parameters(), lr=0.5)
        p0 = [m.probs().detach().clone() for m in net.mixed]
        info = strat.alpha_step(net, x, y, objective=HardwareLoss("none", target_ms=3.0),
                                optimizer=opt, gen=torch.Generator().manual_seed(0))
        assert len(seen) == 1 and info["reward"] == pytest.approx(1.0)
        for m, p, op in zip(net.mixed, p0, seen[0].ops):
            i = m.names.index(op)
            assert sign * (float(m.probs()[i].detach()) - float(p[i])) > 1e-4


def test_reinforce_with_a_live_latency_callable_prefers_faster_archs(tiny_space_dict):
    """The latency comes from a callable (standing in for a live measurement): archs using
    k3_e6 are 4x slower, so with equal accuracy the policy must move away from k3_e6."""
    space = SearchSpace.from_dict(tiny_space_dict)
    net, x, y = _constant_accuracy_net(space)
    calls = []

    def lat(arch: Arch) -> float:
        calls.append(arch)
        return 1.0 + 3.0 * sum(op == "k3_e6" for op in arch.ops)

    strat = make_strategy("reinforce")
    strat.latency_fn = lat
    opt = torch.optim.Adam(net.arch_parameters(), lr=0.05, betas=(0.0, 0.999))
    gen = torch.Generator().manual_seed(0)
    k = [m.names.index("k3_e6") for m in net.mixed]
    before = [float(m.probs()[i].detach()) for m, i in zip(net.mixed, k)]
    for _ in range(30):
        strat.alpha_step(net, x, y, objective=HardwareLoss("add", target_ms=2.0), optimizer=opt,
                         gen=gen)
    after = [float(m.probs()[i].detach()) for m, i in zip(net.mixed, k)]
    assert len(calls) == 30 * strat.samples
    assert all(a < b - 0.02 for a, b in zip(after, before)), (before, after)


def test_reinforce_live_with_loss_none_and_a_target_is_refused():
    from directnas.errors import UserError
    from directnas.nas.searcher import check_config

    with pytest.raises(UserError, match="reinforce-live times every sampled net"):
        check_config(SearchConfig(strategy="reinforce-live", target_latency_ms=1.0))
    check_config(SearchConfig(strategy="reinforce-live", target_latency_ms=1.0, loss="hinge"))


def test_reinforce_reward_leaves_the_target_out_with_loss_none():
    """Loss none: alpha does not see T, REINFORCE's reward included (so one search serves every
    target); a latency form hands it the target."""
    from directnas.nas.strategies_base import target_of

    assert target_of(HardwareLoss("none", target_ms=3.0)) is None
    assert target_of(HardwareLoss("hinge", target_ms=3.0)) == 3.0


def test_reinforce_reward_is_official_form():
    r = Reinforce(reward_w=0.1)
    assert r.reward(0.9, 2.0, None) == 0.9
    assert r.reward(0.9, 2.0, 2.0) == pytest.approx(0.9)
    assert r.reward(0.9, 4.0, 2.0) == pytest.approx(0.9 * 0.5 ** 0.1)
    assert r.reward(0.9, 1.0, 2.0) > 0.9  # faster than the target earns more


def test_live_latency_measures_the_built_arch_once_per_arch(tiny_space_dict, monkeypatch):
    space = SearchSpace.from_dict(tiny_space_dict)
    fn = rl.live_latency(proto=Protocol(threads=2, warmup=1, repeats=2))
    a = Arch(space, ["k3_e3"] * len(space.layers))
    threads = torch.get_num_threads()
    ms = fn(a)
    assert ms > 0 and torch.get_num_threads() == threads  # the search keeps its own threads
    calls = []
    monkeypatch.setattr(rl, "measure_net", lambda *a, **k: calls.append(1) or {"ms": 9.0})
    assert fn(a) == ms and not calls  # memoised
    assert fn(Arch(space, ["k3_e6"] * len(space.layers))) == 9.0 and len(calls) == 1


def test_gumbel_temperature_anneals_and_searcher_calls_the_hook(tiny_space_dict):
    g = GumbelSoftmax(tau0=5.0, tau_end=0.1)
    taus = []
    for e in range(6):
        g.on_epoch(e, 6)
        taus.append(g.tau)
    assert taus[0] == pytest.approx(5.0) and taus[-1] == pytest.approx(0.1)
    assert all(b < a for a, b in zip(taus, taus[1:]))
    # low temperature: the Gumbel-softmax weights approach one-hot
    m = Supernet(SearchSpace.from_dict(tiny_space_dict)).mixed[0]
    gen = torch.Generator().manual_seed(0)
    g.on_epoch(0, 6)
    hot = float(g.weights(m, gen).detach().max())
    g.on_epoch(5, 6)
    cold = min(float(g.weights(m, gen).detach().max()) for _ in range(20))
    assert hot < 0.7 and cold > 0.7


def test_searcher_anneals_gumbel(tiny_space_dict, tiny_idx_dir, tmp_path):
    space = SearchSpace.from_dict(tiny_space_dict)
    cfg = SearchConfig(warmup_epochs=1, epochs=2, batch_size=32, valid_size=200, max_steps=2,
                       strategy="gumbel", threads=1)
    seed_everything(cfg.seed)
    s = Searcher(space, load_dataset(tiny_idx_dir), fake_table(space), cfg, tmp_path)
    s.run()
    assert s.strategy.tau == pytest.approx(0.1)  # the last of 3 epochs reached tau_end


def test_cli_runs_a_soft_strategy( tiny_space_dict, tiny_space_yaml, tiny_idx_dir, tmp_path):
    name = "darts"
    table = tmp_path / "t.json"
    fake_table(SearchSpace.from_dict(tiny_space_dict)).save(table)
    out = tmp_path / "run"
    rc = main(["search", "--strategy", name, "--space", str(tiny_space_yaml), "--data",
               str(tiny_idx_dir), "--latency-table", str(table), "--out", str(out), "--quick",
               "--batch-size", "32", "--target-latency", "12", "--threads", "1"])
    assert rc == 0
    assert json.loads((out / "arch.json").read_text())["strategy"] == name


@pytest.mark.parametrize("paths", [2, None])
def test_recomputed_gate_grads_equal_the_in_graph_ones(paths, tiny_space_dict):
    """full_v2-style recompute (one path in the graph) gives the same alpha update as running
    every sampled path behind its gate."""
    space = SearchSpace.from_dict(tiny_space_dict)
    x, y = torch.randn(8, 1, 16, 16), torch.randint(0, 4, (8,))
    alphas = []
    for recompute in (False, True):
        torch.manual_seed(0)
        net = Supernet(space, alpha_std=0.5).train()
        alpha0 = torch.cat([a.detach().clone() for a in net.arch_parameters()])
        opt = torch.optim.SGD(net.arch_parameters(), lr=1.0)
        gen = torch.Generator().manual_seed(3)
        s = BinaryGates(paths=paths, recompute=recompute)
        for _ in range(3):
            s.alpha_step(net, x, y, objective=HardwareLoss("none"), optimizer=opt, gen=gen)
        alphas.append(torch.cat([a.detach() for a in net.arch_parameters()]))
    assert float((alphas[0] - alphas[1]).abs().max()) < 1e-4
    assert float((alphas[1] - alpha0).abs().max()) > 1e-3  # and the update is not trivially zero

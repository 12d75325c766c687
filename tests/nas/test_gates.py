"""The two-path binary-gate estimator against exact gradients; the rescale keeps unsampled p."""

import torch

from directnas.nas.gates import BinaryGates, binary_gate_grad, make_strategy
from directnas.nas.loss import HardwareLoss
from directnas.nas.supernet import MixedOp, Supernet
from directnas.space.space import SearchSpace


def test_gate_grad_formula_matches_softmax_jacobian():
    torch.manual_seed(0)
    alpha = torch.randn(5, requires_grad=True)
    dg = torch.randn(5)
    p = torch.softmax(alpha, 0)
    (p * dg).sum().backward()  # d/dalpha of sum_j p_j * dL/dg_j
    assert torch.allclose(binary_gate_grad(dg, p.detach()), alpha.grad, atol=1e-6)


def test_two_path_estimate_equals_exact_gradient_for_a_linear_loss(tiny_space_dict):
    """For L linear in the layer output, dL/dg_j = L(o_j) exactly, so the estimator must equal
    the exact gradient of the expected loss over the sampled pair (renormalised softmax)."""
    torch.manual_seed(0)
    space = SearchSpace.from_dict(tiny_space_dict)
    layer = next(l for l in space.layers if len(l.candidates) == 4)  # has a zero
    m = MixedOp(layer, alpha_std=1.0).eval()
    x = torch.randn(2, layer.c_in, layer.hw_in, layer.hw_in)
    w = torch.randn(2, layer.c_out, layer.hw_out, layer.hw_out)
    for pair in ([0, 2], [3, 1], [1, 2]):  # index 3 is zero
        gates = torch.tensor([1.0, 0.0], requires_grad=True)
        m.set_active(pair, gates=gates)
        (w * m(x)).sum().backward()
        old = m.alpha.detach()[pair]
        est = binary_gate_grad(gates.grad, torch.softmax(old, 0))
        with torch.no_grad():
            losses = []
            for i in pair:
                m.set_active([i])
                losses.append((w * m(x)).sum())
        a = old.clone().requires_grad_(True)
        (torch.softmax(a, 0) * torch.stack(losses)).sum().backward()
        assert torch.allclose(est, a.grad, rtol=1e-4, atol=1e-4), (pair, est, a.grad)


def test_alpha_step_changes_at_most_two_paths_and_keeps_the_rest(tiny_space_dict):
    torch.manual_seed(0)
    space = SearchSpace.from_dict(tiny_space_dict)
    net = Supernet(space, alpha_std=0.5)
    strat = make_strategy("binary-two")
    opt = torch.optim.Adam(net.arch_parameters(), lr=0.1, betas=(0.0, 0.999))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 4, (4,))
    for _ in range(3):
        before = [m.probs().detach().clone() for m in net.mixed]
        strat.alpha_step(net, x, y, objective=HardwareLoss("none"), optimizer=opt, gen=gen)
        moved_any = False
        for m, p0 in zip(net.mixed, before):
            p1 = m.probs().detach()
            changed = ~torch.isclose(p0, p1, atol=1e-7, rtol=0)
            assert int(changed.sum()) <= 2
            # the pair's total probability is unchanged, so unsampled paths keep theirs
            assert torch.isclose(p0.sum(), p1.sum())
            assert torch.allclose(p0[~changed], p1[~changed], atol=1e-7)
            moved_any |= bool(changed.any())
        assert moved_any


def test_weights_are_untouched_by_an_alpha_step(tiny_space_dict):
    space = SearchSpace.from_dict(tiny_space_dict)
    net = Supernet(space)
    w0 = [p.detach().clone() for p in net.weight_parameters()]
    opt = torch.optim.Adam(net.arch_parameters(), lr=0.1, betas=(0.0, 0.999))
    BinaryGates().alpha_step(net, torch.randn(4, 1, 16, 16), torch.randint(0, 4, (4,)),
                             objective=HardwareLoss("none"), optimizer=opt,
                             gen=torch.Generator().manual_seed(1))
    for a, b in zip(w0, net.weight_parameters()):
        assert torch.equal(a, b) or a.ndim == 0
    assert all(p.requires_grad for p in net.weight_parameters())


def test_latency_term_pushes_expected_latency_down(tiny_space_dict):
    torch.manual_seed(0)
    space = SearchSpace.from_dict(tiny_space_dict)
    net = Supernet(space)
    lat = [[0.0 if op == "zero" else (2.0 if "e6" in op else 1.0) for op in l.candidates]
           for l in space.layers]
    net.set_latency(0.5, lat)
    e0 = float(net.expected_latency().detach())
    opt = torch.optim.Adam(net.arch_parameters(), lr=0.05, betas=(0.0, 0.999))
    loss = HardwareLoss("add", target_ms=1.0, lam=5.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        BinaryGates().alpha_step(net, torch.randn(4, 1, 16, 16), torch.randint(0, 4, (4,)),
                                 objective=loss, optimizer=opt, gen=gen)
    assert float(net.expected_latency().detach()) < e0 - 0.1

"""Compression methods on a tiny LeNet trained on generated 16x16 data (seconds each)."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from directnas.compression import fixed_point, lowrank, prune, share, ternary
from directnas.compression.codec import decode_state, encode_state
from directnas.compression.finetune import FinetuneConfig, accuracy, eval_batches, finetune, weight_layers
from directnas.compression.huffman import huffman_decode, huffman_encode
from directnas.compression.state import CompressConfig, State
from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.models import structure
from directnas.models.model_file import ModelFile
from directnas.models.registry import build_named
from directnas.training.train_net import TrainConfig, train_net

torch.set_num_threads(1)
FT = FinetuneConfig(epochs=1, max_steps=8, batch_size=64)


@pytest.fixture(scope="module")
def data(tiny_idx_dir):
    return load_dataset(tiny_idx_dir)


def _trained(name: str, data) -> nn.Module:
    torch.manual_seed(0)
    net = build_named(name, input_shape=data.input_shape, num_classes=4)
    train_net(net, data, TrainConfig(epochs=2, batch_size=64, threads=1, channels_last=False))
    return net.eval()


@pytest.fixture(scope="module")
def mlp(data) -> nn.Module:
    return _trained("lenet-300-100", data)


@pytest.fixture(scope="module")
def lenet5(data) -> nn.Module:
    return _trained("lenet-5", data)


def _state(net: nn.Module, data, tmp_path: Path, **cfg) -> State:
    file = ModelFile(name="test", input_shape=data.input_shape, num_classes=4, state_dict={})
    return State(net=copy.deepcopy(net), file=file, data=data, out=tmp_path,
                 cfg=CompressConfig(finetune=FT, valid_images=300, calib_images=128, threads=1,
                                    latency_repeats=5, latency_warmup=1, **cfg))


def _sparsity(m: nn.Module) -> float:
    return float((m.weight == 0).float().mean())


def test_mlp_learns(mlp, data):
    assert accuracy(mlp, eval_batches(data)) > 0.9


def test_prune_uniform_reaches_sparsity_and_saves_plain_weights(mlp, data, tmp_path):
    st = _state(mlp, data, tmp_path, sparsity=0.8, uniform=True, prune_steps=2)
    prune.run(st)
    for _, m in weight_layers(st.net):
        assert abs(_sparsity(m) - 0.8) < 0.005
    sd = st.net.state_dict()
    assert not [k for k in sd if k.endswith(("_orig", "_mask"))]
    copy.deepcopy(st.net)  # no prune hooks left
    buf = io.BytesIO()
    torch.save(sd, buf)
    fresh = build_named("lenet-300-100", input_shape=data.input_shape, num_classes=4)
    fresh.load_state_dict(torch.load(io.BytesIO(buf.getvalue())))


def test_prune_sensitivity_hits_overall_target_and_plots(mlp, data, tmp_path):
    st = _state(mlp, data, tmp_path, sparsity=0.7, prune_steps=1)
    prune.run(st)
    layers = weight_layers(st.net)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    total = sum(m.weight.numel() for _, m in layers)
    assert abs(zeros / total - 0.7) < 0.01
    assert (tmp_path / "sensitivity.png").stat().st_size > 1000
    curves = st.report["sensitivity"]["accuracy"]
    assert set(curves) == {n for n, _ in layers} and all(len(c) == len(prune.SPARSITIES) for c in curves.values())
    # layers are pruned unevenly (per-layer thresholds), not all at the same sparsity
    assert len({round(_sparsity(m), 2) for _, m in layers}) > 1


def test_choose_sparsities_follows_sensitivity():
    sp = (0.0, 0.5, 0.9)
    curves = {"robust": [0.9, 0.9, 0.89], "fragile": [0.9, 0.7, 0.3]}
    s = prune.choose_sparsities(curves, {"robust": 100, "fragile": 100}, tolerance=0.01,
                                target=None, sparsities=sp)
    assert s["robust"] == pytest.approx(0.9) and s["fragile"] == pytest.approx(0.025)


def test_per_weight_allocation_prunes_the_big_layer_harder_at_equal_sensitivity():
    sp = prune.SPARSITIES
    curve = [0.9 - 0.5 * s ** 4 for s in sp]  # the same sensitivity in both layers
    curves, sizes = {"big": curve, "small": curve}, {"big": 9000, "small": 1000}
    eq = prune.choose_sparsities(curves, sizes, tolerance=0.01, target=0.8, sparsities=sp)
    pw = prune.choose_sparsities(curves, sizes, tolerance=0.01, target=0.8, sparsities=sp,
                                 allocation="per-weight")
    for s in (eq, pw):  # both hit the overall target
        assert (s["big"] * 9000 + s["small"] * 1000) / 10000 == pytest.approx(0.8, abs=1e-3)
    assert eq["big"] == pytest.approx(eq["small"])
    assert pw["big"] > 0.8 > pw["small"]
    drop = lambda s: 0.5 * s ** 4  # noqa: E731  the summed drop is smaller per weight
    assert drop(pw["big"]) + drop(pw["small"]) < drop(eq["big"]) + drop(eq["small"])
    with pytest.raises(UserError, match="per-weight needs --sparsity"):
        prune.choose_sparsities(curves, sizes, tolerance=0.01, target=None, allocation="per-weight")


def test_share_gives_at_most_2_pow_b_values_and_keeps_zeros(mlp, data, tmp_path):
    st = _state(mlp, data, tmp_path, sparsity=0.6, uniform=True, prune_steps=1, bits_fc=3)
    prune.run(st)
    zeros_before = {n: m.weight == 0 for n, m in weight_layers(st.net)}
    share.run(st)
    for n, m in weight_layers(st.net):
        w = m.weight.detach()
        assert torch.unique(w[w != 0]).numel() <= 8
        assert torch.equal(w == 0, zeros_before[n])  # pruned stay pruned, kept stay non-zero
        assert isinstance(m.weight, nn.Parameter) and not hasattr(m, "centroids")
        # biases (and BatchNorm tensors, where there are any) are float16 values afterwards
        assert torch.equal(m.bias, m.bias.half().float()) and m.bias.abs().sum() > 0
    assert len(st.report["share"]["float16_tensors"]) == len(weight_layers(st.net))
    assert all(lay.endswith("f16") for n, lay in encode_state(st.net.state_dict()).layouts.items()
               if n.endswith(".bias"))
    copy.deepcopy(st.net)
    assert accuracy(st.net, eval_batches(data)) > 0.8


def test_huffman_codec_round_trip_is_exact_and_smaller(mlp, data, tmp_path):
    st = _state(mlp, data, tmp_path, sparsity=0.9, uniform=True, prune_steps=1, bits_fc=4)
    prune.run(st)
    share.run(st)
    sd = st.net.state_dict()
    raw = encode_state(sd, dense_only=True)
    plain = encode_state(sd, huffman=False)
    huff = encode_state(sd, huffman=True)
    assert len(huff.data) < len(plain.data) < len(raw.data) / 8
    path = tmp_path / "m.dnz"
    path.write_bytes(huff.data)
    back = decode_state(path.read_bytes())
    assert list(back) == list(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and torch.equal(back[k], sd[k]), k
    # the decoded net is the same model: same logits bit for bit
    fresh = build_named("lenet-300-100", input_shape=data.input_shape, num_classes=4).eval()
    fresh.load_state_dict(back)
    x = torch.randn(8, *data.input_shape)
    assert torch.equal(fresh(x), st.net.eval()(x))


def test_huffman_long_gaps_and_skewed_symbols():
    rng = np.random.default_rng(0)
    sym = np.concatenate([np.zeros(5000, int), rng.integers(0, 40, 300), [39] * 3])
    lengths, stream = huffman_encode(sym, 41)
    assert np.array_equal(huffman_decode(lengths, stream, sym.size), sym)
    assert len(stream) < sym.size * 6 / 8 / 3
    w = torch.zeros(10_000)
    w[[0, 5, 4000, 9999]] = torch.tensor([1.5, -2.0, 1.5, 3.0])  # gaps far above 2**gap_bits
    enc = encode_state({"w": w}, gap_bits=3, huffman=True)
    assert torch.equal(decode_state(enc.data)["w"], w) and len(enc.data) < 1000


def test_dnz_header_is_deflated_and_plain_header_files_still_decode():
    import json
    import struct
    import zlib

    sd = {f"block{i}.bn.running_mean": torch.full((8,), float(i)) for i in range(40)}
    enc = encode_state(sd, huffman=True)
    assert enc.data[:4] == b"DNZ2"
    (hlen,) = struct.unpack("<I", enc.data[4:8])
    header = zlib.decompress(enc.data[8:8 + hlen])
    assert hlen < len(header) / 3  # 40 near-identical entries deflate well
    plain = b"DNZ1" + struct.pack("<I", len(header)) + header + enc.data[8 + hlen:]
    assert json.loads(header)[0]["name"] == "block0.bn.running_mean"
    for data_ in (enc.data, plain):
        back = decode_state(data_)
        assert all(torch.equal(back[k], v) for k, v in sd.items())


def test_fixed_point_16_bits_matches_float(lenet5, data, tmp_path):
    x = torch.cat([b for b, _ in eval_batches(data, data.train, limit=128)])
    q16, wfmt, afmt = fixed_point.quantize_fixed(lenet5, x, 16)
    test = list(eval_batches(data))
    assert abs(accuracy(q16, test) - accuracy(lenet5, test)) <= 0.01
    for name, m in weight_layers(q16):
        bw, fl = wfmt[name]
        q = m.weight.detach() * 2.0 ** fl
        assert bw == 16 and torch.equal(q, q.round()) and q.abs().max() < 2 ** 15
    q4, _, _ = fixed_point.quantize_fixed(lenet5, x, 4)
    for _, m in weight_layers(q4):
        assert torch.unique(m.weight).numel() <= 16


def test_fixed_point_method_reports_bit_table(lenet5, data, tmp_path):
    st = _state(lenet5, data, tmp_path, fixed_bits=8, report_bits=(16, 8, 4))
    fixed_point.run(st)
    table = st.report["fixed_point"]["test_accuracy_by_bits"]
    assert set(table) == {"float", "16", "8", "4"}
    enc = encode_state(st.net.state_dict(), fixed=st.fixed)
    assert all("fixed" in enc.layouts[k] or "codebook" in enc.layouts[k] for k in st.fixed)
    assert torch.equal(decode_state(enc.data)["2.weight"], st.net.state_dict()["2.weight"])


def test_lowrank_full_rank_reproduces_the_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 10, 3, stride=2, padding=1, bias=True)
    x = torch.randn(2, 6, 9, 9)
    full = structure.decompose(conv, min(10, 6 * 9))
    assert torch.allclose(full(x), conv(x), atol=1e-5)
    low = structure.decompose(conv, 2)
    assert low[0].weight.shape == (2, 6, 3, 3) and low[1].weight.shape == (10, 2, 1, 1)
    assert not torch.allclose(low(x), conv(x), atol=1e-3)
    assert not lowrank.eligible(nn.Conv2d(8, 8, 3, groups=8))  # depthwise
    r = lowrank.rank_for(conv, 2.0)
    assert 54 * 10 / (r * (54 + 10)) >= 2.0


def test_lowrank_method_replaces_convs(lenet5, data, tmp_path):
    st = _state(lenet5, data, tmp_path, speedup=2.0)
    lowrank.run(st)
    assert set(st.structure["lowrank"]) == {"0", "2"}
    assert isinstance(st.net[2], nn.Sequential)
    assert st.report["lowrank"]["measured_speedup"] > 0
    assert accuracy(st.net, eval_batches(data)) > 0.8


def test_ternary_three_values_inner_layers_only(lenet5, data, tmp_path):
    st = _state(lenet5, data, tmp_path)
    ternary.run(st)
    layers = weight_layers(st.net)
    for name, m in layers[1:-1]:
        vals = torch.unique(m.weight.detach())
        wp, wn = st.layers[name]["wp"], st.layers[name]["wn"]
        assert vals.numel() == 3 and wp > 0 and wn > 0
        assert torch.allclose(vals, torch.tensor([-wn, 0.0, wp]))
    for _, m in (layers[0], layers[-1]):
        assert torch.unique(m.weight.detach()).numel() > 100
    copy.deepcopy(st.net)
    assert accuracy(st.net, eval_batches(data)) > 0.8


def test_finetune_trains_channels_last_and_hands_back_standard_layout(lenet5, data):
    net = copy.deepcopy(lenet5)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    finetune(net, data, FinetuneConfig(epochs=1, max_steps=4, batch_size=64, channels_last=True))
    conv = [p for p in net.parameters() if p.ndim == 4]
    assert conv and all(p.is_contiguous() for p in conv)  # the codec and exporters read this layout
    assert any(not torch.equal(before[n], p) for n, p in net.named_parameters())  # it did train
    assert accuracy(net, eval_batches(data)) > 0.8


def test_finetune_runs_on_the_training_loop_and_stops_on_a_nan_loss(lenet5, data):
    """Fine-tuning is ``Trainer``'s loop: ``after_step`` after every step, the cosine LR, and a
    NaN loss is a one-line error (fine-tuning writes no checkpoint, so none is mentioned)."""
    net = copy.deepcopy(lenet5)
    steps: list[float] = []
    opt_lr = []

    def after() -> None:
        steps.append(1.0)

    finetune(net, data, FinetuneConfig(epochs=2, max_steps=3, batch_size=64, lr=0.01),
             after_step=after, progress=lambda it, desc, n: (opt_lr.append(desc), it)[1])
    assert len(steps) == 6 and opt_lr == ["finetune 1/2", "finetune 2/2"] and not net.training
    with pytest.raises(UserError, match=r"NaN/inf: lower the fine-tuning learning rate \(--finetune-lr\)$"):
        finetune(copy.deepcopy(lenet5), data,
                 FinetuneConfig(epochs=1, max_steps=3, batch_size=64, lr=float("nan")))


def test_accuracy_leaves_the_net_in_the_mode_it_found(lenet5, data):
    net = copy.deepcopy(lenet5)
    for training in (True, False):
        net.train(training)
        accuracy(net, eval_batches(data, limit=64))
        assert net.training == training

"""--train-ema: the trained net ends with the exponential moving average of its per-step
weights and BatchNorm statistics, and a run with it resumes bitwise."""

from __future__ import annotations

import pytest
import torch

from directnas.data.readers import load_dataset
from directnas.errors import UserError
from directnas.utils.fileio import torch_load
from directnas.space.arch import uniform_arch
from directnas.space.space import SearchSpace
from directnas.training.train_net import TRAIN_CHECKPOINT, TrainConfig, train_net
from helpers import Crash, crash_after

torch.set_num_threads(1)
DECAY = 0.8  # short horizon: 20 steps must move the average far from the last weights


@pytest.fixture(scope="module")
def tiny(tiny_idx_dir):
    from helpers import TINY_SPACE

    space = SearchSpace.from_dict(TINY_SPACE)
    return uniform_arch(space, "k3_e3"), load_dataset(tiny_idx_dir)


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=64, lr=0.05, seed=2, threads=1, max_steps=10,
                checkpoint_every=4)
    return TrainConfig(**{**base, **kw})


def float_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}


def test_ema_ends_with_the_average_of_the_per_step_weights(tiny):
    arch, data = tiny
    torch.manual_seed(0)
    plain = arch.build()
    snaps: list[dict[str, torch.Tensor]] = []

    def record(it, desc, total):  # the loop body (one step) has run when the next item is asked
        for item in it:
            yield item
            snaps.append(float_state(plain))

    train_net(plain, data, cfg(), progress=record)
    assert len(snaps) == 20
    expected = snaps[0]  # the first update copies the weights, later ones lerp towards them
    for s in snaps[1:]:
        expected = {k: DECAY * expected[k] + (1 - DECAY) * s[k] for k in expected}

    torch.manual_seed(0)
    net = arch.build()
    got = train_net(net, data, cfg(ema_decay=DECAY))
    final = float_state(net)
    far = max(float((snaps[-1][k] - expected[k]).abs().max()) for k in expected)
    assert far > 1e-3  # the average is not the last weights
    for k, v in expected.items():
        torch.testing.assert_close(final[k], v, rtol=1e-4, atol=1e-5, msg=k)
    ref = train_net(plain, data, cfg(epochs=0))  # evaluation only, of the plain net
    assert got != ref  # the metrics are those of the averaged net


def test_ema_run_resumes_bitwise(tmp_path, tiny):
    arch, data = tiny
    torch.manual_seed(0)
    ref_net = arch.build()
    ref = train_net(ref_net, data, cfg(ema_decay=DECAY),
                    checkpoint=tmp_path / "ref" / TRAIN_CHECKPOINT)
    torch.manual_seed(0)
    net = arch.build()
    ck = tmp_path / "run" / TRAIN_CHECKPOINT
    with pytest.raises(Crash):
        train_net(net, data, cfg(ema_decay=DECAY), checkpoint=ck, progress=crash_after(13))
    assert torch_load(ck)["ema"] is not None
    torch.manual_seed(5)
    net2 = arch.build()
    assert train_net(net2, data, cfg(ema_decay=DECAY), checkpoint=ck, resume=True) == ref
    for k, v in ref_net.state_dict().items():
        assert torch.equal(v, net2.state_dict()[k]), k
    with pytest.raises(UserError, match="was written with --train-ema"):
        train_net(arch.build(), data, cfg(), checkpoint=ck, resume=True)

"""Library calls leave the process as they found it: intra-op threads restored, the RNG not
moved by latency measurement, no module-level switches, no test hooks read from the
environment by product code."""

from __future__ import annotations

import ast

import pytest
import torch

from directnas.latency.measure import Protocol, measure_net, time_runner
from directnas.utils.threads import torch_threads
from helpers import SRC as SRC_DIR

SRC = SRC_DIR


def test_torch_threads_sets_the_count_and_restores_it_even_on_error():
    before = torch.get_num_threads()
    other = before + 1
    with torch_threads(other):
        assert torch.get_num_threads() == other
        with torch_threads(None):
            assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(other):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_a_runner_is_timed_with_the_protocols_threads_and_the_count_is_restored():
    before = torch.get_num_threads()
    seen: list[int] = []
    times = time_runner(lambda: seen.append(torch.get_num_threads()),
                        Protocol(threads=before + 1, warmup=1, repeats=3))
    assert len(times) == 3 and seen == [before + 1] * 4
    assert torch.get_num_threads() == before


def test_measuring_a_net_leaves_threads_and_the_rng_alone():
    """Latency measurement feeds random inputs to the nets it times: the process's RNG is put
    back, so whether a table was profiled or cached never changes what is trained after."""
    before = torch.get_num_threads()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    rng = torch.get_rng_state()
    ms = measure_net(net, (1, 8, 8), proto=Protocol(threads=before + 1, warmup=1, repeats=3,
                                                    rounds=1))["ms"]
    assert ms > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.get_num_threads() == before


def test_training_keeps_the_callers_thread_count(tiny_idx_dir):
    from directnas.data.readers import load_dataset
    from directnas.space.arch import uniform_arch
    from directnas.space.space import SearchSpace
    from directnas.training.train_net import TrainConfig, train_net
    from helpers import TINY_SPACE

    before = torch.get_num_threads()
    seen: list[int] = []

    def progress(it, desc, n):  # noqa: ANN001, ANN202
        for item in it:
            seen.append(torch.get_num_threads())
            yield item

    arch = uniform_arch(SearchSpace.from_dict(TINY_SPACE), "k3_e3")
    train_net(arch.build(), load_dataset(tiny_idx_dir),
              TrainConfig(epochs=1, max_steps=2, batch_size=32, threads=before + 1),
              progress=progress)
    assert seen == [before + 1] * 2
    assert torch.get_num_threads() == before


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


# the process settings the library reads: real configuration, listed in docs/pipeline.md
ENVIRONMENT = {"DIRECTNAS_CACHE", "DIRECTNAS_NO_PROGRESS", "DIRECTNAS_LOWER_WORKERS", "RANK",
               "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}


def test_product_code_sets_no_global_state_by_itself():
    """Outside ``utils/threads.py`` and ``utils/seeding.py`` nothing sets torch's thread count
    or seeds the process's RNGs (a worker process's initializer aside), and the environment
    variables read are the documented settings."""
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text())
        for call in _calls(tree):
            name = _dotted(call.func)
            if rel not in ("utils/threads.py", "utils/seeding.py") and name in (
                    "torch.set_num_threads", "torch.manual_seed", "np.random.seed",
                    "numpy.random.seed", "random.seed", "torch.cuda.manual_seed_all"):
                found.append(f"{rel}:{call.lineno} {name}")
            if name in ("os.environ.get", "os.getenv") and call.args:
                key = call.args[0]
                if not (isinstance(key, ast.Constant) and key.value in ENVIRONMENT):
                    found.append(f"{rel}:{call.lineno} reads {ast.unparse(key)}")
    assert not found, found
    doc = (SRC.parents[1] / "docs" / "pipeline.md").read_text()
    assert all(f"`{k}`" in doc for k in ENVIRONMENT)

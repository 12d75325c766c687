"""End to end through the CLI on a tiny space and generated data: search -> train."""

import json

from directnas.cli.main import main


def test_search_then_train(tmp_path, tiny_idx_dir, tiny_space_yaml, monkeypatch):
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    common = ["--threads", "1", "--repeats", "5", "--warmup", "1"]
    rc = main(["search", "--space", str(tiny_space_yaml), "--data", str(tiny_idx_dir),
               "--out", str(out), "--warmup-epochs", "1", "--epochs", "2", "--batch-size", "64",
               "--target-latency", "5", "--seed", "0", *common])
    assert rc == 0
    arch = json.loads((out / "arch.json").read_text())
    assert len(arch["layers"]) == 4 and arch["predicted_latency_ms"] > 0
    search = json.loads((out / "search.json").read_text())
    assert len(search["epochs"]) == 3 and search["alpha_steps"] > 0
    assert len(search["history"]) >= 2 and len(search["history"][-1]["probs"]) == 4
    assert (out / "latency.json").exists() and (out / "search_checkpoint.pt").exists()
    # the cached table is reused by the next run
    assert list((tmp_path / "cache").glob("latency-tiny-*.json"))

    tout = tmp_path / "train"
    rc = main(["train", "--arch", str(out / "arch.json"), "--data", str(tiny_idx_dir),
               "--out", str(tout), "--train-epochs", "3", "--train-batch-size", "64", *common])
    assert rc == 0
    m = json.loads((tout / "metrics.json").read_text())
    for key in ("test_accuracy", "params", "macs", "latency_ms", "predicted_latency_ms"):
        assert key in m
    assert m["test_accuracy"] > 0.6  # four learnable classes; chance is 0.25
    assert m["params"] > 1000 and m["macs"] > m["params"]
    # the flip-TTA figure is that of the saved model, evaluated with FlipAverage
    from directnas.models.model_file import load_model
    from directnas.data.datasets import Batches
    from directnas.data.readers import load_dataset
    from directnas.training.train_net import evaluate
    net, _ = load_model(tout)
    ds = load_dataset(tiny_idx_dir)
    test = Batches(ds.test, batch_size=100, mean=ds.mean, std=ds.std, shuffle=False)
    assert abs(evaluate(net, test)["accuracy"] - m["test_accuracy"]) < 1e-9
    assert abs(evaluate(net, test, flip_tta=True)["accuracy"] - m["test_accuracy_flip_tta"]) < 1e-9


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    rc = main(["search", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o"),
               "--latency-table", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "error" in err


def test_training_flags_are_declared_once_and_run_prefixes_them():
    """`train --ema` / `--train-lr` and `run --train-ema` / `--train-lr` set the same TrainConfig
    fields; run's unprefixed --lr belongs to the search."""
    from directnas.cli.main import build_parser
    from directnas.cli.search_flags import search_options
    from directnas.cli.train_flags import train_options

    flags = ["--ema", "0.99", "--train-lr", "0.2", "--no-augment", "--batch-size", "32"]
    train = build_parser().parse_args(["train", "--model", "lenet-5", "--out", "o", *flags])
    run = build_parser().parse_args(["run", "--out", "o", "--train-ema", "0.99", "--train-lr",
                                     "0.2", "--no-train-augment", "--train-batch-size", "32",
                                     "--lr", "0.01"])
    expected = {"ema_decay": 0.99, "lr": 0.2, "augment": False, "batch_size": 32}
    assert {k: v for k, v in train_options(train).items() if k in expected} == expected
    assert {k: v for k, v in train_options(run, prefix="train-").items() if k in expected} == expected
    assert search_options(run)["lr"] == 0.01


def test_latency_threads_default_to_one_and_compute_threads_to_the_usable_cores(monkeypatch):
    """--threads not given: latency on 1 thread (batch-1 latency), the search and the training on
    every usable core (their config default); given, it sets all three."""
    from directnas.cli.common import protocol_from
    from directnas.cli.main import build_parser
    from directnas.cli.search_flags import search_options
    from directnas.cli.train_flags import train_options
    from directnas.nas.searcher import SearchConfig
    from directnas.training.train_net import TrainConfig
    from directnas.utils import threads

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    run = build_parser().parse_args(["run", "--out", "o"])
    assert protocol_from(run).threads == 1
    assert "threads" not in search_options(run) and "threads" not in train_options(run, prefix="train-")
    assert SearchConfig().threads == 3 and TrainConfig().threads == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun: the cores shared by its processes
    assert SearchConfig().threads == 1
    given = build_parser().parse_args(["run", "--out", "o", "--threads", "2"])
    assert protocol_from(given).threads == 2 and search_options(given)["threads"] == 2
    assert train_options(given, prefix="train-")["threads"] == 2

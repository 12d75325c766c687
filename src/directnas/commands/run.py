"""directnas run: profile -> search -> train from scratch -> test accuracy -> measured latency -> report.

One resumable run folder (re-run the same command to continue; finished stages are skipped)::

    DIR/latency.json          the latency table (profiled once, or a copy of --latency-table)
    DIR/search/               directnas search's outputs, curves.json, tb/ (TensorBoard)
    DIR/train/                directnas train's outputs, curves.json, tb/
    DIR/report.md, report.json, *.png

A target is ms (``1.5``) or a multiple of the space's fastest net on the table (``1.5x``).
Several targets (``--target-latency 1.2,1.5,2.0``) give one search + train each in ``DIR/t1.2/``
... and a report over all of them in ``DIR``.  Every stage folder keeps the options it was made
with (``stage.json``); re-running with other options is refused rather than mixing two configs.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
from pathlib import Path
from typing import Any, Callable

from directnas.commands.common import add_protocol_args, get_table, parse_target, protocol_from
from directnas.commands.search import add_search_args, do_search
from directnas.commands.train import add_train_args, do_train
from directnas.errors import UserError
from directnas.fileio import read_json, write_json
from directnas.report import write_report
from directnas.space.arch import Arch
from directnas.space.space import load_space
from directnas.tblog import EpochLog

STAGE = "stage.json"
NOT_IN_KEY = {"checkpoint_every"}  # options that do not change a stage's result
# run's training flags -> the names do_train reads (--epochs, --lr, ... belong to the search)
TRAIN_FLAGS = {"train_config": "config", "train_epochs": "epochs",
               "train_batch_size": "batch_size", "train_lr": "lr",
               "train_weight_decay": "weight_decay", "train_random_erasing": "random_erasing",
               "train_ema": "ema_decay"}


def _dests(adder: Callable[[argparse.ArgumentParser], None]) -> list[str]:
    """The option names an argument helper defines (so new options join the stage keys)."""
    tmp = argparse.ArgumentParser(add_help=False)
    adder(tmp)
    return [a.dest for a in tmp._actions if a.dest not in NOT_IN_KEY]


def parse_targets(text: str) -> list[float | str]:
    """``1.5``, ``1.2,1.5,2.0`` (ms) or multiples of the fastest net (``1.6x``, ``1.3x,2x``)."""
    values = [parse_target(v) for v in text.split(",") if v.strip()]
    if not values:
        raise argparse.ArgumentTypeError("give a target latency, e.g. 1.5 (ms), 1.6x or 1.2,1.5,2.0")
    return list(dict.fromkeys(values))


def _label(target: float | str) -> str:
    return target if isinstance(target, str) else f"{target:g}"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="profile, search, train, measure and report in one run folder",
                       conflict_handler="resolve")
    add_search_args(p)
    p.add_argument("--target-latency", type=parse_targets, dest="targets",
                   help="target latency in ms (1.5) or as a multiple of the space's fastest net on "
                        "this device's table (1.6x); several (1.2,1.5,2.0): one search + train each")
    p.add_argument("--train-config", help="YAML file of training options")
    p.add_argument("--train-epochs", type=int, help="training epochs of the searched net")
    p.add_argument("--train-batch-size", type=int)
    p.add_argument("--train-lr", type=float)
    p.add_argument("--train-weight-decay", type=float,
                   help="L2 on conv/linear weights (default 5e-5)")
    p.add_argument("--train-random-erasing", type=float,
                   help="probability of random erasing per training image (default 0: off)")
    p.add_argument("--train-ema", type=float,
                   help="exponential moving average of the weights, decay per step (e.g. 0.999; "
                        "default 0: off)")
    p.add_argument("--compare", nargs="+", default=[], metavar="DIR",
                   help="finished baseline/run folders to add to the report's accuracy-latency plane")
    p.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files")
    p.add_argument("--out", required=True, help="run folder (re-run the command to resume)")
    p.add_argument("--resume", action="store_true", help="accepted for symmetry: run always resumes")
    p.set_defaults(func=run)


# ---- stage bookkeeping (shared with `directnas baselines`) ---------------------------------------
def _file_digest(path: str | None) -> str | None:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path and Path(path).is_file() else None


def enter_stage(folder: Path, key: dict[str, Any], *, done: bool, name: str = STAGE) -> bool:
    """Record ``key`` (the options of this stage) in ``folder/name``, or check it against the
    recorded one; returns ``done``.  Raises UserError if the folder was made with other options."""
    key = json.loads(json.dumps(key))
    path = folder / name
    if path.exists():
        old = read_json(path, what="stage file")
        diff = [f"{k}: {old.get(k)!r} -> {key.get(k)!r}" for k in sorted(set(old) | set(key))
                if old.get(k) != key.get(k)]
        if diff:
            raise UserError(f"{folder} was made with other options ({'; '.join(diff[:4])}): re-run with "
                            f"the same options, use a new --out, or delete {folder} to redo it")
    elif done:
        raise UserError(f"{folder} holds outputs not made by this command: use a new --out")
    else:
        write_json(path, key)
    return done


def train_namespace(args: argparse.Namespace) -> argparse.Namespace:
    ns = argparse.Namespace(**vars(args))
    for run_name, train_name in TRAIN_FLAGS.items():
        setattr(ns, train_name, getattr(args, run_name, None))
    return ns


def train_key(ns: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    key = {d: getattr(ns, d, None) for d in _dests(add_train_args)}
    return {**key, "config_digest": _file_digest(ns.config), "seed": getattr(ns, "seed", None), **extra}


def train_with_log(ns: argparse.Namespace, folder: Path, *, arch_path: str | None,
                   model_name: str | None, tensorboard: bool) -> dict[str, Any]:
    """do_train with curves.json + TensorBoard; resumes if do_train learns to."""
    elog = EpochLog(folder, "train", tensorboard=tensorboard)
    extra = {"resume": True} if "resume" in inspect.signature(do_train).parameters else {}
    try:
        metrics = do_train(ns, folder, arch_path=arch_path, model_name=model_name,
                           on_epoch=elog.train_row, **extra)
        elog.final({k: metrics[k] for k in ("test_accuracy", "latency_ms") if k in metrics},
                   step=len(elog.rows))
    finally:
        elog.close()
    return metrics


# ---- the stages ----------------------------------------------------------------------------------
def profile_stage(args: argparse.Namespace, out: Path) -> Path:
    space = load_space(args.space)
    key = {**{d: getattr(args, d, None) for d in _dests(add_protocol_args)}, "space": space.fingerprint(),
           "latency_table": args.latency_table, "table_digest": _file_digest(args.latency_table)}
    path = out / "latency.json"
    if enter_stage(out, key, done=path.exists(), name="latency_stage.json"):
        print(f"latency table: reusing {path}")
        return path
    get_table(space, table_path=args.latency_table, backend=args.backend, proto=protocol_from(args),
              out=out)
    print(f"latency table: {path}")
    return path


def search_stage(args: argparse.Namespace, folder: Path, target: float | str | None, table: Path, *,
                 tensorboard: bool) -> Path:
    sdir = folder / "search"
    key = {d: getattr(args, d, None) for d in _dests(add_search_args)}
    key.update(target_latency_ms=target, space=load_space(args.space).fingerprint(),
               config_digest=_file_digest(args.config))
    if enter_stage(sdir, key, done=(sdir / "arch.json").exists()):
        print(f"search: done, reusing {sdir / 'arch.json'}")
        return sdir / "arch.json"
    ns = argparse.Namespace(**vars(args))
    ns.target_latency_ms, ns.latency_table = target, str(table)
    elog = EpochLog(sdir, "search", tensorboard=tensorboard)
    try:
        arch_path = do_search(ns, sdir, resume=True, on_epoch=elog.search_row)
        search = read_json(sdir / "search.json")
        elog.probabilities(search.get("history", []), search.get("layer_names", []))
    finally:
        elog.close()
    return arch_path


def train_stage(args: argparse.Namespace, folder: Path, arch_path: Path, table: Path, *,
                tensorboard: bool) -> dict[str, Any]:
    tdir = folder / "train"
    ns = train_namespace(args)
    key = train_key(ns, arch=Arch.load(arch_path).ops)
    if enter_stage(tdir, key, done=(tdir / "metrics.json").exists()):
        print(f"train: done, reusing {tdir / 'metrics.json'}")
        return read_json(tdir / "metrics.json")
    ns.latency_table = str(table)
    return train_with_log(ns, tdir, arch_path=str(arch_path), model_name=None,
                          tensorboard=tensorboard)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    targets: list[float | str | None] = list(args.targets or [None])
    tb = not args.no_tensorboard
    table = profile_stage(args, out)
    folders = []
    for t in targets:
        folder = out if len(targets) == 1 else out / f"t{_label(t)}"
        if len(targets) > 1:
            print(f"== target {_label(t)}{'' if isinstance(t, str) else ' ms'} -> {folder}")
        arch_path = search_stage(args, folder, t, table, tensorboard=tb)
        train_stage(args, folder, arch_path, table, tensorboard=tb)
        write_report([folder, *args.compare], folder, title=f"directnas run {folder.name}")
        folders.append(folder)
    summary = write_report([*folders, *args.compare], out, title=f"directnas run {out.name}") \
        if len(targets) > 1 else read_json(out / "report.json")
    print()
    for folder in folders:
        m = read_json(folder / "train" / "metrics.json")
        arch = Arch.load(folder / "search" / "arch.json")
        t = arch.meta.get("target_latency_ms")
        print(f"architecture: {(folder / 'search' / 'arch.json').resolve()}  [{arch.summary()}]")
        print(f"  test accuracy {100 * m['test_accuracy']:.2f} %, measured latency {m['latency_ms']:.3f} ms"
              f" (predicted {m.get('predicted_latency_ms', float('nan')):.3f} ms"
              f"{f', target {t:g} ms' if t else ''}; {m['latency_backend']}, batch 1)")
    pngs = sorted({p for plots in summary["plots"].values() for p in plots.values()}
                  | ({summary["pareto_plot"]} if summary["pareto_plot"] else set()))
    print(f"report: {(out / 'report.md').resolve()}  (+ report.json)")
    print(f"plots: {', '.join(str((out / p).resolve()) for p in pngs)}")
    if tb:
        print(f"curves: tensorboard --logdir {out.resolve()}")
    return 0

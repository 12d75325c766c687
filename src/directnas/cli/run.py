"""directnas run: profile -> search -> train -> export -> references -> report (-> compress) in
one resumable run folder (re-run the same command to continue; finished stages are skipped).
The folder's layout is ``pipeline.runfolder.RunFolder``'s; several targets (``1.2,1.5,2.0``)
give one search + train each in ``DIR/t1.2/`` ... and a report over all of them in ``DIR``.
Without ``--backend`` (and ``--latency-table``) the run is for the best deployment runtime
installed."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from directnas import api
from directnas.cli.common import bar, protocol_from
from directnas.cli.flags import add_out_args
from directnas.cli.reference_flags import add_reference_args, reference_options
from directnas.cli.run_flags import add_run_args, compress_options
from directnas.cli.search_flags import add_search_args, search_options
from directnas.cli.train_flags import train_options
from directnas.pipeline.run import default_backend
from directnas.pipeline.sections import target_lines
from directnas.runtimes import DEPLOYMENT
from directnas.utils.fileio import read_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="profile, search, train, measure and report in one run folder",
                       conflict_handler="resolve")
    add_search_args(p)
    add_run_args(p)
    p.add_argument("--backend", default=None, help="latency backend searched for, measured in and "
                   f"shipped to (default: the first installed of {', '.join(DEPLOYMENT)})")
    add_reference_args(p)
    add_out_args(p, "run folder (re-run the command to resume)")
    p.add_argument("--resume", action="store_true", help="accepted for symmetry: run always resumes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    backend = default_backend(args.backend, args.latency_table, print)
    results = api.run(args.space, args.data, out=out, target_latency=args.targets,
                      backend=backend, table=args.latency_table,
                      protocol=asdict(protocol_from(args)), device=args.device,
                      input_size=args.input_size, max_input_size=args.max_input_size,
                      search=search_options(args),
                      train=train_options(args, prefix="train-", config_file=args.train_config),
                      compress=compress_options(args, backend), compare=args.compare,
                      tensorboard=not args.no_tensorboard, say=print, progress=bar,
                      near_nets=args.near_target_nets, references=reference_options(args),
                      force=args.force)
    print("\n" + "\n".join(line for r in results for line in target_lines(r)))
    summary = read_json(out / "report.json")
    pngs = sorted({p for plots in summary["plots"].values() for p in plots.values()}
                  | ({summary["pareto_plot"]} if summary["pareto_plot"] else set()))
    print(f"report: {(out / 'report.md').resolve()}  (+ report.json)")
    print(f"plots: {', '.join(str((out / p).resolve()) for p in pngs)}")
    if not args.no_tensorboard:
        print(f"curves: tensorboard --logdir {out.resolve()}")
    return 0

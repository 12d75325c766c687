"""directnas report: report.md + report.json + pictures from finished run and baseline folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from directnas.cli.common import add_protocol_args, bar, protocol_from
from directnas.cli.flags import add_out_args
from directnas.errors import UserError
from directnas.pipeline.outdir import check_out, claimed
from directnas.report.writer import find_runs, write_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="build a report (markdown, JSON, plots) from finished run folders")
    p.add_argument("folders", nargs="+", metavar="DIR",
                   help="folders written by directnas run, train or baselines (searched recursively)")
    add_out_args(p, "report folder")
    p.add_argument("--title", default="directnas report")
    p.add_argument("--remeasure", action="store_true",
                   help="re-time every trained net side by side in this process (interleaved rounds) "
                        "instead of using the latency each training measured")
    add_protocol_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    check_out(out, "report", force=args.force)
    runs = find_runs(args.folders)
    if args.remeasure:
        if args.rounds < 1:
            raise UserError("--rounds must be >= 1")
        from directnas.report.remeasure import remeasure

        proto = protocol_from(args)
        timed = remeasure(runs, backend=args.backend, proto=proto, rounds=args.rounds,
                          progress=lambda it: bar(list(it), "side-by-side latency"))
        floor = next((r.metrics["latency_noise_floor"] for r in timed
                      if "latency_noise_floor" in r.metrics), None)
        print(f"re-timed {len(timed)} nets side by side ({args.backend}, batch {proto.batch_size}, "
              f"{proto.threads} threads, {args.rounds} rounds x {proto.repeats} repeats"
              + (f", noise floor {100 * floor:.1f} %" if floor is not None else "") + ")")
    with claimed(out, "report"):
        summary = write_report(args.folders, out, title=args.title, runs=runs)
    for r in summary["runs"]:
        acc = f"{100 * r['test_accuracy']:.2f} %" if "test_accuracy" in r else "not trained"
        lat = f"{r['latency_ms']:.3f} ms" if "latency_ms" in r else "-"
        print(f"{r['name']:<24} {r['kind']:<9} {acc:>12}  {lat}")
    for c in summary["comparisons"]:
        if c.get("ratio"):
            print(f"{c['searched']} vs {c['baseline_family']}: {c['ratio']:.2f}x lower latency at equal "
                  f"accuracy ({c['method']})")
        elif c.get("ratio_lower_bound"):
            print(f"{c['searched']} vs {c['baseline_family']}: more accurate than every baseline; "
                  f"{c['method']}")
    print(f"report: {(out / 'report.md').resolve()}  (+ report.json, "
          f"{len(list(out.glob('*.png')))} PNGs)")
    return 0

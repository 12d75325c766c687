"""directnas latency design: which architectures to time, balanced over (layer, op)."""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

from directnas.pipeline.outdir import check_out_file
from directnas.errors import UserError
from directnas.latency.fit import balanced_design, design_rows
from directnas.space.space import load_space
from directnas.utils.fileio import write_json, write_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("design", help="write which architectures to time (balanced over (layer, op))")
    p.add_argument("--space", required=True, help="preset name or YAML path")
    p.add_argument("--n", type=int, required=True, help="number of architectures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="archs.csv or archs.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_out_file(args.out)
    space = load_space(args.space)
    idx = balanced_design(space, args.n, seed=args.seed)
    rows = design_rows(space, idx)
    out = Path(args.out)
    if out.suffix == ".json":
        write_json(out, {"format": "directnas-archs", "version": 1, "space": space.to_dict(),
                         "archs": rows})
    elif out.suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["arch_id", "op_idx_list", "ops"])
        for r in rows:
            w.writerow([r["arch_id"], " ".join(map(str, r["op_idx_list"])), " ".join(r["ops"])])
        write_text(out, buf.getvalue())
    else:
        raise UserError(f"--out {out} must end in .csv or .json")
    per_pair = args.n / max(len(l.candidates) for l in space.layers)
    print(f"{args.n} architectures of {space.name} (each (layer, op) pair ~{per_pair:.1f} times): "
          f"{out.resolve()}")
    return 0

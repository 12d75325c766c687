"""Does the supernet rank nets as training from scratch does?  (issue 26; Yu et al. 2020)

Takes the nets of a ``search_vs_random.py`` result (their architectures and test accuracies after
training from scratch) and the finished searches' supernets (``search_checkpoint.pt``), and scores
every net inside every supernet with its inherited weights: the validation accuracy of that
path, BatchNorm re-estimated on 20 training batches (``Searcher.supernet_accuracy``, the
recalibration every one-shot NAS paper uses).  Prints and writes, per supernet:

* Kendall tau and Spearman rho between supernet accuracy and trained test accuracy,
* the supernet accuracy of the search's own derived net against the mean of the others
  (a supernet that trained mostly its own path scores the others low: a self-reinforcing
  choice rather than a comparison).

    python benchmarks/supernet_ranking.py --result benchmarks/results/search_vs_random_2x.json \\
        --search runs/svr2/search0 runs/svr2/search1 runs/svr2/search2 \\
        --out benchmarks/results/supernet_ranking_2x.json

The searches must have been run on the full Fashion-MNIST training split (the default); their
validation split is rebuilt from the checkpoint's seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import fields
from pathlib import Path

import torch
from scipy.stats import kendalltau, spearmanr

from directnas.data.sources import as_dataset, fit_space
from directnas.latency.table import LatencyTable
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.utils.seeding import seed_everything
from directnas.space.arch import Arch
from directnas.space.space import load_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--result", required=True, help="search_vs_random.py output JSON")
    ap.add_argument("--search", nargs="+", required=True, help="search run folders (with search_checkpoint.pt)")
    ap.add_argument("--space", default="fashion-mnist")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--valid-batches", type=int, default=40, help="validation batches of 128 (40: all 5000)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    res = json.loads(Path(a.result).read_text())
    nets = [(f"random{i}", r["arch"], r["test_accuracy"]) for i, r in enumerate(res["random"])] + \
           [(f"searched{r['seed']}", r["arch"], r["test_accuracy"]) for r in res["searched"]]
    space0 = load_space(a.space)
    data = as_dataset(a.data, size=space0.input_size)
    space = fit_space(space0, data)
    trained = [t for _, _, t in nets]
    out: dict = {"result": a.result, "nets": [{"name": n, "arch": ops, "test_accuracy": t} for n, ops, t in nets],
                 "supernets": []}
    for folder in map(Path, a.search):
        ck = torch.load(folder / "search_checkpoint.pt", map_location="cpu", weights_only=False)
        names = {f.name for f in fields(SearchConfig)}
        cfg = SearchConfig(**{k: v for k, v in ck["config"].items() if k in names})
        cfg.threads = a.threads
        seed_everything(cfg.seed)  # as directnas.search does at its entry
        searcher = Searcher(space, data, LatencyTable.load(folder / "latency.json"), cfg, folder)
        searcher.resume(ck)
        own = json.loads((folder / "search.json").read_text())["arch"]
        accs = [searcher.supernet_accuracy(Arch(space, ops), max_batches=a.valid_batches, calib_batches=20)
                for _, ops, _ in nets]
        tau, rho = kendalltau(accs, trained), spearmanr(accs, trained)
        others = [x for (_, ops, _), x in zip(nets, accs) if ops != own]
        own_acc = searcher.supernet_accuracy(Arch(space, own), max_batches=a.valid_batches, calib_batches=20)
        row = {"search": str(folder), "weight_sharing": cfg.weight_sharing, "weight_paths": cfg.weight_paths,
               "supernet_accuracy": accs, "kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
               "spearman_rho": float(rho.statistic), "own_arch": own, "own_accuracy": own_acc,
               "others_mean_accuracy": statistics.mean(others)}
        out["supernets"].append(row)
        print(f"{folder}: sharing={cfg.weight_sharing} paths={cfg.weight_paths}  tau {tau.statistic:+.2f} "
              f"(p {tau.pvalue:.2f})  rho {rho.statistic:+.2f}  own path {100 * own_acc:.1f} %  "
              f"others {100 * row['others_mean_accuracy']:.1f} % "
              f"(range {100 * min(others):.1f}-{100 * max(others):.1f})", flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

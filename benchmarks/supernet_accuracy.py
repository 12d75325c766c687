"""Diagnostic: the derived arch's accuracy inside the supernet, recomputed from a finished search
folder's final checkpoint, with BatchNorm recalibration (Searcher.supernet_accuracy), with the
supernet's own BN statistics, and with per-batch statistics.  On the demo's search (session 4):
0.544 / 0.1117 / 0.518; its search.json (0.1117) was written just before the recalibration fix.

    python benchmarks/supernet_accuracy.py
"""
import json, torch
from pathlib import Path
from directnas.nas.searcher import Searcher, SearchConfig
from directnas.utils.seeding import seed_everything
from directnas.space.space import load_space
from directnas.data.readers import load_dataset
from directnas.latency.table import LatencyTable
from directnas.space.arch import Arch
torch.set_num_threads(1)
run = Path("runs/demo/search")
c = json.loads((run / "search_config.json").read_text())
cfg = SearchConfig(**{k: v for k, v in c.items() if k in SearchConfig.__dataclass_fields__})
space = load_space("fashion-mnist"); data = load_dataset("fashion-mnist")
table = LatencyTable.load(run / "latency.json")
import tempfile; out = Path(tempfile.mkdtemp())
import shutil; shutil.copy(run / "search_checkpoint.pt", out / "search_checkpoint.pt")
seed_everything(cfg.seed)  # as directnas.search does at its entry
s = Searcher(space, data, table, cfg, out)
print("resumed", s.resume(s.load_checkpoint()) if hasattr(s, "load_checkpoint") else None)
arch = Arch(space, json.loads((run / "search.json").read_text())["arch"])
print("derived arch, recal BN:", s.supernet_accuracy(arch))
# without recalibration, and with train-mode BN
for i, m in enumerate(s.net.mixed): m.set_active([m.names.index(arch.ops[i])])
from directnas.training.train_net import evaluate
print("derived arch, supernet BN stats:", evaluate(s.net, (b for i, b in enumerate(s.valid) if i < 20))["accuracy"])
s.net.train()
with torch.no_grad():
    corr = tot = 0
    for i, (x, y) in enumerate(s.valid):
        if i >= 20: break
        corr += int((s.net(x).argmax(1) == y).sum()); tot += y.numel()
print("derived arch, batch BN stats:", corr / tot)

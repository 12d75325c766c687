"""How fast does the supernet learn when every weight step runs a different path?

Trains the fashion-mnist supernet's weights (SGD nesterov, label smoothing 0.1, crop + flip, batch
128, the search's warm-up settings) for ``--steps`` steps with either one fixed path (every layer
its first candidate: a plain net) or a path drawn uniformly per layer per step (the search's
warm-up), and prints the mean training loss of every 50 steps.

    nice -n 5 python benchmarks/supernet_sampling.py fixed 0.05 200
    nice -n 5 python benchmarks/supernet_sampling.py uniform 0.05 200
"""
import sys
import time

import torch
import torch.nn.functional as F

from directnas.data.datasets import Batches

from directnas.data.readers import load_dataset
from directnas.nas.supernet import Supernet
from directnas.space.space import load_space

mode, lr, steps = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
torch.set_num_threads(1)
space, data = load_space("fashion-mnist"), load_dataset("/usr/share/datasets/fashion-mnist")
net = Supernet(space).to(memory_format=torch.channels_last)
batches = Batches(data.train, batch_size=128, mean=data.mean, std=data.std, augment=True, seed=0,
                  drop_last=True, channels_last=True)
opt = torch.optim.SGD(net.weight_parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=4e-5)
gen, t0, losses = torch.Generator().manual_seed(1), time.time(), []
for i, (x, y) in enumerate(batches):
    if i >= steps:
        break
    for m in net.mixed:
        m.set_active([0 if mode == "fixed" else int(torch.randint(len(m.names), (1,), generator=gen))])
    loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(float(loss.detach()))
    if (i + 1) % 50 == 0:
        print(mode, lr, i + 1, round(sum(losses[-50:]) / 50, 3), f"{time.time() - t0:.0f} s", flush=True)

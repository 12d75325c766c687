"""Diagnostic: is the slow latency that `train` reports right after training a property of the
trained net, of the process, or of the machine?  Measures the demo net (loaded), a fresh untrained
net of the same arch, trains the loaded one for N steps in the same process, and measures all
again (2 threads, batch 1, the table protocol).

    python benchmarks/latency_in_process.py 150
"""
import copy, time, sys, torch
from directnas.models.model_file import load_model
from directnas.latency.measure import measure_net, Protocol
from directnas.space.arch import Arch
from directnas.training.train_net import TrainConfig, train_net
from directnas.data.readers import load_dataset
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 150
proto = Protocol(threads=2)
net, ck = load_model("runs/demo/train/model.pt")
fresh = Arch.from_dict(ck["arch"]).build()
shape = (1, 28, 28)
def lat(tag, m):
    r = measure_net(m, shape, proto=proto); print(f"{tag:40s} {r['ms']:.3f} ms", flush=True)
for _ in range(2):
    lat("loaded trained (before training)", net); lat("fresh untrained", fresh)
data = load_dataset("fashion-mnist")
t = time.time()
train_net(net, data, TrainConfig(epochs=1, max_steps=steps, threads=2))
print(f"trained {steps} steps in {time.time()-t:.0f} s")
net = net.to(memory_format=torch.contiguous_format)
for _ in range(2):
    lat("after training, same object", net); lat("fresh untrained", fresh)
    lat("deepcopy of trained", copy.deepcopy(net))

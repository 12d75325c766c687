"""Diagnostic: the same net measured repeatedly in one process, after 60 s of matmul load and
after idling (2 threads, batch 1, the table protocol).

    python benchmarks/latency_idle.py
"""
import time, torch
from directnas.models.model_file import load_model
from directnas.latency.measure import measure_net, Protocol
proto = Protocol(threads=2)
net, ck = load_model("runs/demo/train/model.pt")
def lat(tag):
    r = measure_net(net, (1, 28, 28), proto=proto); print(f"{time.strftime('%H:%M:%S')} {tag:28s} {r['ms']:.3f} ms", flush=True)
lat("start"); lat("again")
a = torch.randn(512, 512); t = time.time()
while time.time() - t < 60: a @ a
lat("after 60 s of matmul"); lat("again")
time.sleep(60); lat("after 60 s idle"); lat("again")
time.sleep(60); lat("after 120 s idle")

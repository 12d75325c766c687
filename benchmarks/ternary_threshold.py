"""Ternary threshold sweep without fine-tuning: every inner layer of the demo net ternarized at
threshold t, accuracy on 3000 test images before and after re-estimating BatchNorm statistics on
20 training batches.

    python benchmarks/ternary_threshold.py
"""
import torch, copy
from directnas.models.model_file import load_model
from directnas.compression.finetune import weight_layers, eval_batches, accuracy
from directnas.compression.ternary import start
from directnas.data.datasets import Batches
from directnas.data.readers import load_dataset
torch.set_num_threads(1)
net, meta = load_model("runs/demo/train/model.pt")
data = load_dataset("fashion-mnist")
b = list(eval_batches(data, limit=3000))
tr = Batches(data.train, batch_size=256, mean=data.mean, std=data.std, shuffle=True, augment=False)
def recal(n):
    for m in n.modules():
        if isinstance(m, torch.nn.BatchNorm2d): m.reset_running_stats(); m.momentum=None
    n.train()
    with torch.no_grad():
        for i,(x,y) in enumerate(tr):
            if i>=20: break
            n(x)
    n.eval()
for t in (0.05, 0.1, 0.15, 0.2, 0.3):
    n2 = copy.deepcopy(net)
    for name, m in weight_layers(n2)[1:-1]:
        start(m, t)
    with torch.no_grad():
        a = accuracy(n2.eval(), b)
    recal(n2)
    with torch.no_grad():
        a2 = accuracy(n2, b)
    print(f"t={t}: all inner ternary {a:.4f}, after BN recal {a2:.4f}", flush=True)

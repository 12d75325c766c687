"""Does the supernet learn on this data?  Warm-up steps (uniform single paths, the search's own
loop) on an image folder with the fitted space, or the same space with fewer ops per layer, no
zero op, or weight sharing: train loss and the argmax path's validation accuracy (BatchNorm
re-estimated) per epoch of ``--steps`` steps.

On the sign-language digits at 96 px (1,486 training photos; docs/search-strategies.md, "The
most-MACs net of the window"): one op per layer learns (63 % after 90 steps), two or more ops per
layer stay at chance (8-15 %) with or without weight sharing::

    tar xzf ../shared/data/sign-language-digits/sign-language-digits.tar.gz -C /tmp/sld-data
    python benchmarks/supernet_learning.py --data /tmp/sld-data/Dataset --size 96
    python benchmarks/supernet_learning.py --data /tmp/sld-data/Dataset --size 96 \\
        --space-option 'candidates=[k3_e3]' --space-option allow_zero=false
    python benchmarks/supernet_learning.py --data /tmp/sld-data/Dataset --size 96 \\
        --search-option weight_sharing=full
"""

from __future__ import annotations

import argparse
import tempfile
import time

import yaml

from directnas.data.readers import load_dataset
from directnas.nas.searcher import SearchConfig, Searcher
from directnas.space.fitted import fitted_space_dict
from directnas.space.space import SearchSpace
from directnas.utils.seeding import seed_everything


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="image folder")
    ap.add_argument("--size", type=int, default=96, help="input size (the fitted space's)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=15, help="weight steps per epoch")
    ap.add_argument("--space-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a key of the fitted space's YAML (e.g. allow_zero=false)")
    ap.add_argument("--search-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a SearchConfig option (e.g. weight_sharing=full, lr=0.1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    seed_everything(a.seed)
    data = load_dataset(a.data, size=a.size)
    d = fitted_space_dict(a.size, num_classes=data.train.num_classes)
    d.update({k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in a.space_option)})
    space = SearchSpace.from_dict(d)
    options = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in a.search_option)}
    cfg = SearchConfig(warmup_epochs=a.epochs, epochs=0, max_steps=a.steps, threads=a.threads,
                       seed=a.seed, **options)
    s = Searcher(space, data, None, cfg, tempfile.mkdtemp(prefix="supernet-learning-"))
    t0 = time.perf_counter()
    print(f"{space.name}: {len(space.layers)} layers of {len(space.candidates)} ops"
          f"{' + zero' if space.allow_zero else ''}, options {options or 'default'}")
    print("epoch  steps  train loss  argmax path valid acc  wall s")

    def on_epoch(row: dict) -> None:
        print(f"{row['epoch']:5d}  {row['epoch'] * a.steps:5d}  {row['train_loss']:10.3f}  "
              f"{100 * row['supernet_valid_accuracy']:20.1f} %  {time.perf_counter() - t0:6.0f}",
              flush=True)

    s.run(on_epoch=on_epoch)


if __name__ == "__main__":
    main()

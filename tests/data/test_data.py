"""In-memory datasets: splits, batches and their augmentation, dataset names and folders."""

import numpy as np
import pytest
import torch

from directnas.data.datasets import Batches, split_train_valid

from directnas.data.readers import load_dataset, read_cifar10_bin, read_image_folder
from directnas.errors import UserError


def test_idx_reader_and_split(tiny_idx_dir):
    ds = load_dataset(tiny_idx_dir)
    assert ds.train.images.shape == (1200, 1, 16, 16) and ds.train.images.dtype == torch.uint8
    assert ds.test.labels.shape == (300,) and ds.input_shape == (1, 16, 16)
    tr, va = split_train_valid(ds.train, valid_size=200, seed=3)
    assert len(tr) == 1000 and len(va) == 200
    tr2, va2 = split_train_valid(ds.train, valid_size=200, seed=3)
    assert torch.equal(va.labels, va2.labels) and torch.equal(va.images, va2.images)


def test_batches_normalise_augment_and_shard(tiny_idx_dir):
    ds = load_dataset(tiny_idx_dir)
    b = Batches(ds.train, batch_size=64, mean=ds.mean, std=ds.std, augment=True, seed=0)
    x, y = next(iter(b))
    assert x.shape == (64, 1, 16, 16) and x.dtype == torch.float32 and y.shape == (64,)
    plain = Batches(ds.train, batch_size=1200, mean=ds.mean, std=ds.std, shuffle=False)
    xa, _ = next(iter(plain))
    assert abs(float(xa.mean())) < 0.05 and abs(float(xa.std()) - 1) < 0.05
    # crop with padding keeps content: an augmented image is a shifted/flipped copy
    b2 = Batches(ds.train, batch_size=8, mean=(0.0,), std=(1 / 255,), augment=True, pad=2, seed=1,
                 shuffle=False)
    xs, _ = next(iter(b2))
    orig = ds.train.images[:8].float()
    for i in range(8):
        cands = []
        for f in (orig[i], orig[i].flip(-1)):
            p = torch.nn.functional.pad(f, (2, 2, 2, 2))
            cands += [p[:, dy:dy + 16, dx:dx + 16] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(xs[i], c) for c in cands)
    halves = [list(Batches(ds.train, batch_size=100, mean=ds.mean, std=ds.std, seed=5, rank=r,
                           world=2)) for r in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == 6


def test_random_erasing_blanks_one_rectangle_and_is_off_by_default(tiny_idx_dir):
    ds = load_dataset(tiny_idx_dir)
    kw = dict(batch_size=256, mean=ds.mean, std=ds.std, augment=True, pad=0, flip=False,
              shuffle=False, seed=2)
    plain, _ = next(iter(Batches(ds.train, **kw)))
    erased, _ = next(iter(Batches(ds.train, erase=1.0, **kw)))
    # without crop and flip the only change is the erased rectangle, which normalises to 0
    changed = erased != plain
    assert torch.all(erased[changed] == 0)
    for i in range(256):
        rows = torch.nonzero((erased[i, 0] == 0) & (plain[i, 0] != 0))
        if len(rows):  # every changed pixel lies in one rectangle of 2-33 % of the image
            (r0, c0), (r1, c1) = rows.min(0).values, rows.max(0).values
            assert (r1 - r0 + 1) * (c1 - c0 + 1) <= 0.34 * 16 * 16 + 16
    assert int(changed.flatten(1).any(1).sum()) > 200
    # probability 0 (the default) leaves the batch and the random stream untouched
    again, _ = next(iter(Batches(ds.train, erase=0.0, **kw)))
    assert torch.equal(again, plain)
    with pytest.raises(UserError, match="random erasing"):
        Batches(ds.train, erase=1.5, **kw)


def test_corrupt_and_missing_files_give_clear_errors(tmp_path, tiny_idx_dir):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(tiny_idx_dir, bad)
    f = bad / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_dataset(bad)
    with pytest.raises(UserError, match="neither"):
        load_dataset(tmp_path / "nope")
    (bad / "x").mkdir()
    f.unlink()
    with pytest.raises(UserError, match="missing"):
        load_dataset(bad)


def test_cifar_binary_and_image_folder(tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    c = tmp_path / "cifar"
    c.mkdir()
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rows = np.concatenate([rng.integers(0, 10, (7, 1)), rng.integers(0, 256, (7, 3072))], 1)
        (c / name).write_bytes(rows.astype(np.uint8).tobytes())
    ds = read_cifar10_bin(c)
    assert ds.train.images.shape == (35, 3, 32, 32) and len(ds.test) == 7
    f = tmp_path / "folder"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (f / split / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)).save(
                    f / split / cls / f"{i}.png")
    ds = read_image_folder(f)
    assert ds.train.images.shape == (6, 3, 12, 12) and ds.train.num_classes == 2
    (f / "train" / "cat" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="bad.png cannot be read"):
        read_image_folder(f)

"""The readers registry (each reader on a tiny generated dataset) and image folders decoded
once: the cache is hit on a second load, invalidated by a changed file, written atomically, and
bad images stop with one line naming the file or are skipped with a count."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import make_images, write_idx
from directnas.data.datasets import Batches, ImageData, split_train_valid, with_stats
from directnas.data.readers import READERS, DataPath, decoded, detect, load_dataset
from directnas.data.readers.decoded import decode_image
from directnas.data.sources import as_dataset
from directnas.errors import UserError


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The cache entries decoded (not opened from the cache) while the test runs."""
    calls: list[Path] = []
    real = decoded._write_entry

    def spy(entry: Path, *args, **kwargs) -> None:
        calls.append(entry)
        real(entry, *args, **kwargs)

    monkeypatch.setattr(decoded, "_write_entry", spy)
    return calls


def write_folder(root: Path, *, per_class: int = 12, side: int = 12, fmt: str = "png",
                 split: bool = True, grey: bool = False) -> Path:
    """Class folders of random images (train/ and test/, or plain class folders)."""
    rng = np.random.default_rng(0)
    for part in (("train", "test") if split else ("",)):
        for c in ("cat", "dog", "owl"):
            d = root / part / c
            d.mkdir(parents=True)
            for i in range(per_class if part != "test" else 3):
                shape = (side, side) if grey else (side, side, 3)
                a = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(a).save(d / f"{i:03d}.{fmt}", quality=95)
    return root


def write_idx_dir(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        x, y = make_images(n, rng)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root


def write_cifar_bin(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rows = np.concatenate([rng.integers(0, 10, (7, 1)), rng.integers(0, 256, (7, 3072))], 1)
        (root / name).write_bytes(rows.astype(np.uint8).tobytes())
    return root


# reader name -> (writer, size given to load_dataset, expected train shape, classes)
LAYOUTS = {
    "idx": (write_idx_dir, None, (60, 1, 16, 16), 4),
    "cifar10-binary": (write_cifar_bin, None, (35, 3, 32, 32), 10),
    "image-folder": (lambda r: write_folder(r, per_class=4), 8, (12, 3, 8, 8), 3),
}


def test_every_registered_reader_is_tested() -> None:
    assert set(READERS) == set(LAYOUTS)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_each_reader_detects_and_reads_its_layout(name: str, tmp_path: Path) -> None:
    write, size, shape, classes = LAYOUTS[name]
    root = write(tmp_path / "data")
    assert detect(root) is READERS[name]
    assert [r.name for r in READERS.values() if r.detect(root)] == [name]  # no other claims it
    for ds in (load_dataset(root, size=size), READERS[name].read(root, size=size,
                                                                 skip_bad_images=False)):
        assert ds.train.shape == shape and ds.train.images.dtype == torch.uint8
        assert ds.train.num_classes == classes and len(ds.test) > 0
        assert len(ds.mean) == shape[1] and all(0 < s < 1 for s in ds.std)


def test_an_unknown_layout_names_the_accepted_ones(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no data here")
    with pytest.raises(UserError) as e:
        load_dataset(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and all(name in msg for name in READERS)


def test_second_load_opens_the_cache_with_the_same_pixels(tmp_path: Path, cache: Path,
                                                          decodes: list[Path], caplog) -> None:
    root = write_folder(tmp_path / "pets", per_class=14, fmt="jpg")
    first = load_dataset(root, size=10)
    assert len(decodes) == 1
    with caplog.at_level(logging.INFO, logger="directnas"):
        second = load_dataset(root, size=10)
    assert len(decodes) == 1, "the second load decoded again"
    assert sum("using decoded cache" in r.getMessage() for r in caplog.records) == 1
    assert second.train.mapped and second.test.mapped
    files = [(str(f), 0, 0) for f in sorted((root / "train").glob("*/*.jpg"))]
    assert decoded.decode_folder(root, files, size=5).from_cache is False
    assert decoded.decode_folder(root, files, size=5).from_cache is True
    decodes.clear()
    assert torch.equal(first.train.images, second.train.images)
    assert (first.mean, first.std) == (second.mean, second.std)
    # a fresh decode of each file, outside the cache, gives the same pixels
    files = sorted((root / "train").glob("*/*.jpg")) + sorted((root / "test").glob("*/*.jpg"))
    fresh = np.stack([decode_image(f, "RGB", 10) for f in files]).transpose(0, 3, 1, 2)
    both = torch.cat([second.train.images, second.test.images]).numpy()
    assert np.array_equal(both, fresh)
    assert second.train.labels.tolist() == [0] * 14 + [1] * 14 + [2] * 14
    # another size is another entry; the mean/std equal the in-memory computation
    other = load_dataset(root, size=6)
    assert len(decodes) == 1 and other.input_shape == (3, 6, 6)
    ref = with_stats("x", ImageData(second.train.images.clone(), second.train.labels, 3),
                     second.test)
    assert np.allclose(ref.mean, second.mean, atol=1e-6)
    assert np.allclose(ref.std, second.std, atol=1e-6)


def test_a_changed_file_invalidates_the_cache(tmp_path: Path, decodes: list[Path]) -> None:
    root = write_folder(tmp_path / "pets", per_class=3)
    before = load_dataset(root, size=12)
    f = root / "train" / "dog" / "001.png"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched
    load_dataset(root, size=12)
    assert len(decodes) == 2 and decodes[0] != decodes[1]
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(f)  # replaced
    after = load_dataset(root, size=12)
    assert len(decodes) == 3
    i = 3 + 1  # train/dog/001.png: after cat's three images
    assert after.train.images[i].sum() == 0 and before.train.images[i].sum() > 0
    (root / "test" / "owl" / "003.png").write_bytes(f.read_bytes())  # a file added
    assert len(load_dataset(root, size=12).test) == 10 and len(decodes) == 4
    entries = [e for e in decodes[-1].parent.iterdir() if not e.name.startswith(".")]
    assert entries == [decodes[-1]], "superseded entries of the folder were kept"


def _corrupt(root: Path) -> Path:
    bad = root / "train" / "dog" / "002.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # a truncated JPEG
    return bad


def test_a_corrupt_jpeg_stops_with_one_line_naming_it(tmp_path: Path, cache: Path) -> None:
    root = write_folder(tmp_path / "pets", per_class=8, fmt="jpg")
    bad = _corrupt(root)
    with pytest.raises(UserError) as e:
        load_dataset(root, size=8)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"image {bad} cannot be read (")
    assert msg.endswith("remove it or pass --skip-bad-images")
    assert not cache.exists(), "a failed decode left files in the cache"


def test_skip_mode_leaves_bad_images_out_with_a_count(tmp_path: Path, decodes: list[Path],
                                                      caplog) -> None:
    root = write_folder(tmp_path / "pets", per_class=8, fmt="jpg")
    bad = _corrupt(root)
    (root / "test" / "cat" / "000.jpg").write_bytes(b"not an image")
    with caplog.at_level(logging.WARNING, logger="directnas"):
        ds = load_dataset(root, size=8, skip_bad_images=True)
    assert len(ds.train) == 23 and len(ds.test) == 8
    assert ds.train.labels.tolist() == [0] * 8 + [1] * 7 + [2] * 8
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 1 and "skipped 2 unreadable images" in lines[0]
    # the cache remembers the bad files: without the option the error names the first one
    with pytest.raises(UserError, match=f"image {bad} cannot be read"):
        load_dataset(root, size=8)
    again = as_dataset(DataPath(root, skip_bad_images=True), size=8)  # the CLI flag's form
    assert len(decodes) == 1 and torch.equal(again.train.images, ds.train.images)


def test_a_plain_folder_is_carved_by_rows_of_the_mapped_file(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pets", per_class=10, split=False, grey=True)
    ds = load_dataset(root, size=12)
    assert ds.train.mapped and ds.train.rows is not None and ds.input_shape == (1, 12, 12)
    assert len(ds.train) == 24 and len(ds.test) == 6
    assert not set(ds.train.rows.tolist()) & set(ds.test.rows.tolist())
    again = load_dataset(root, size=12)
    assert torch.equal(again.test.images, ds.test.images)  # the fixed seed
    ref = with_stats("x", ImageData(ds.train.images.clone(), ds.train.labels, 3), ds.test)
    assert np.allclose(ref.mean, ds.mean, atol=1e-6) and np.allclose(ref.std, ds.std, atol=1e-6)


def test_training_reads_mapped_images_a_batch_at_a_time(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "pets", per_class=20)
    ds = as_dataset(str(root), size=12)
    assert ds.train.mapped
    tr, va = split_train_valid(ds.train, valid_size=10, seed=1)
    assert tr.mapped and tr.rows is not None and tr.store is ds.train.store  # no copy
    mem = ImageData(ds.train.images.clone(), ds.train.labels, 3)
    tr_mem, va_mem = split_train_valid(mem, valid_size=10, seed=1)
    assert torch.equal(va.images, va_mem.images) and torch.equal(tr.labels, tr_mem.labels)
    kw = dict(batch_size=16, mean=ds.mean, std=ds.std, augment=True, seed=3)
    for (x, y), (xm, ym) in zip(Batches(tr, **kw), Batches(tr_mem, **kw)):
        assert torch.equal(x, xm) and torch.equal(y, ym)
    assert torch.equal(tr.take(torch.tensor([4, 0])), tr_mem.images[[4, 0]])


def _chunk_noting_pid(job):
    """``_decode_chunk`` that notes the id of the process it runs in."""
    with open(os.environ["PID_LOG"], "a") as f:
        f.write(f"{os.getpid()}\n")
    return REAL_DECODE_CHUNK(job)


REAL_DECODE_CHUNK = decoded._decode_chunk


def test_decoding_is_spread_over_processes(tmp_path: Path, monkeypatch) -> None:
    from directnas.data.readers.image_folder import read_image_folder

    root = write_folder(tmp_path / "pets", per_class=10)
    monkeypatch.setattr(decoded, "_decode_chunk", _chunk_noting_pid)
    out = {}
    for workers in (1, 2):
        log = tmp_path / f"pids{workers}"
        monkeypatch.setenv("PID_LOG", str(log))
        monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / f"cache{workers}"))
        out[workers] = read_image_folder(root, size=12, workers=workers)
        pids = set(log.read_text().split())
        assert (pids == {str(os.getpid())}) == (workers == 1), pids
        assert len(log.read_text().split()) > 2  # several chunks
    assert torch.equal(out[1].train.images, out[2].train.images)
    assert torch.equal(out[1].test.images, out[2].test.images)


def test_an_interrupted_decode_leaves_no_cache_entry(tmp_path: Path, cache: Path,
                                                     monkeypatch) -> None:
    root = write_folder(tmp_path / "pets", per_class=20)

    class Interrupting:
        def __init__(self, *args, **kwargs) -> None:
            self.n = 0

        def __enter__(self) -> "Interrupting":
            return self

        def __exit__(self, *exc) -> None:
            return None

        def update(self, n: int) -> None:
            self.n += n
            if self.n > 10:
                raise KeyboardInterrupt

    monkeypatch.setattr(decoded, "_progress", Interrupting)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(root, size=12)
    assert not cache.exists() or not any(cache.rglob("*")), list(cache.rglob("*"))
    monkeypatch.undo()
    monkeypatch.setenv("DIRECTNAS_CACHE", str(cache))
    assert len(load_dataset(root, size=12).train) == 60


def _chunk_dying_in_a_child(job):
    """``_decode_chunk`` whose pool processes die (as if killed for memory)."""
    if str(os.getpid()) != os.environ["PARENT_PID"]:
        os._exit(1)
    return REAL_DECODE_CHUNK(job)


def test_a_dead_decoding_process_is_replaced_by_this_one(tmp_path: Path, monkeypatch,
                                                         caplog) -> None:
    from directnas.data.readers.image_folder import read_image_folder

    root = write_folder(tmp_path / "pets", per_class=10)
    monkeypatch.setenv("PARENT_PID", str(os.getpid()))
    monkeypatch.setattr(decoded, "_decode_chunk", _chunk_dying_in_a_child)
    with caplog.at_level(logging.WARNING, logger="directnas"):
        ds = read_image_folder(root, size=12, workers=2)
    assert len(ds.train) == 30 and any("process died" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(decoded, "_decode_chunk", REAL_DECODE_CHUNK)
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "fresh"))
    assert torch.equal(read_image_folder(root, size=12, workers=2).train.images, ds.train.images)


def test_an_unwritable_cache_is_one_line(tmp_path: Path, monkeypatch) -> None:
    root = write_folder(tmp_path / "pets", per_class=2)
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DIRECTNAS_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(UserError, match="set DIRECTNAS_CACHE to a writable folder") as e:
        load_dataset(root, size=8)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("command", [
    ["search", "--out", "o"], ["run", "--out", "o"], ["train", "--arch", "a.json", "--out", "o"],
    ["random-search", "--out", "o", "--target-latency", "1"],
    ["compress", "--model", "m", "--method", "prune", "--out", "o"]])
def test_the_commands_that_take_data_take_skip_bad_images(command: list[str]) -> None:
    from directnas.cli.data_flags import apply_data_options
    from directnas.cli.main import build_parser

    args = apply_data_options(build_parser().parse_args(
        [*command, "--skip-bad-images", "--data", "photos"]))
    assert isinstance(args.data, DataPath) and args.data == "photos" and args.data.skip_bad_images
    plain = apply_data_options(build_parser().parse_args([*command, "--data", "photos"]))
    assert not getattr(plain.data, "skip_bad_images", False)

"""The decode cache: built once, reused, keyed by the source files, rebuilt when corrupt.

An entry is a file on disk like any other: one that does not hold what the module decodes
(image size, channels, dtypes, label range, pairing) is rebuilt with a warning, never trained
on and never a crash. Tampered entries are real files written with torch.save in the cache's
own format.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers.data_formats import write_mnist
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convattn.data.decode_cache import SPLITS, Expected, cached_splits, check_entry
from convattn.data.torchvision_sets import MNISTDataModule

EXPECTED = Expected(in_chans=1, img_size=32, num_classes=10)  # MNIST as `load` decodes it


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONVATTN_CACHE_DIR", str(folder))
    return folder


def load(root: Path, **options) -> dict[str, torch.Tensor]:
    datasets = MNISTDataModule(root=root, img_size=32, **options).load_datasets()
    return {split: ds.images for split, ds in datasets.items()}


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "decoded").glob("*.pt"))


def test_second_load_reads_the_cache_not_the_files(tmp_path, cache, monkeypatch) -> None:
    root = write_mnist(tmp_path / "data", "MNIST")
    first = load(root)
    assert len(entries(cache)) == 1

    def no_decoding(self, train: bool):
        raise AssertionError("decoded again although the cache holds these splits")

    monkeypatch.setattr(MNISTDataModule, "read_split", no_decoding)
    second = load(root)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    load(root, batch_size=7, train_fraction=0.5)  # sampling options share the entry


def test_key_follows_the_files_and_the_decoding_options(tmp_path, cache) -> None:
    root = write_mnist(tmp_path / "data", "MNIST")
    load(root)
    load(root, val_fraction=0.2)  # another split: another entry
    assert len(entries(cache)) == 2
    source = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    load(root)  # the files changed: decoded again
    assert len(entries(cache)) == 3


def test_a_corrupt_entry_is_rebuilt(tmp_path, cache, caplog) -> None:
    root = write_mnist(tmp_path / "data", "MNIST")
    first = load(root)
    (entry,) = entries(cache)
    entry.write_bytes(entry.read_bytes()[:500])  # a job killed mid-write elsewhere
    again = load(root)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert "unreadable" in caplog.text
    torch.load(entry, weights_only=True)  # rewritten whole
    assert not list(entry.parent.glob(".*.tmp"))


def test_off_writes_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CONVATTN_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load(write_mnist(tmp_path / "data", "MNIST"))
    assert not (tmp_path / "xdg").exists()


# ---------------------------------------------------------------- entries that must not be used
def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    return torch.nn.functional.interpolate(images.float(), size=(size, size)).to(images.dtype)


def with_label(labels: torch.Tensor, value: int) -> torch.Tensor:
    bad = labels.clone()
    bad[len(bad) // 2] = value
    return bad


def with_nan(images: torch.Tensor) -> torch.Tensor:
    floats = images.float() / 255  # float images in [0, 1], as digits are held
    floats[0, 0, 0, 0] = float("nan")
    return floats


# (images, labels, a label out of range) -> the tampered (images, labels) of one split
MUTATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], tuple]] = {
    "28 pixels": lambda x, y, _: (resized(x, 28), y),
    "48 pixels": lambda x, y, _: (resized(x, 48), y),
    "not square": lambda x, y, _: (x[..., :30], y),
    "three channels": lambda x, y, _: (x.expand(-1, 3, -1, -1).contiguous(), y),
    "no channel axis": lambda x, y, _: (x[:, 0], y),
    "label out of range": lambda x, y, bad: (x, with_label(y, bad)),
    "int32 labels": lambda x, y, _: (x, y.int()),
    "float labels": lambda x, y, _: (x, y.float()),
    "2-d labels": lambda x, y, _: (x, y[:, None]),
    "int16 images": lambda x, y, _: (x.short(), y),
    "float64 images": lambda x, y, _: (x.double() / 255, y),
    "nan in float images": lambda x, y, _: (with_nan(x), y),
    "one label short": lambda x, y, _: (x, y[:-1]),
    "one image short": lambda x, y, _: (x[1:], y),
    "labels as a list": lambda x, y, _: (x, y.tolist()),
    "one tensor": lambda x, y, _: (x,),
    "sparse images": lambda x, y, _: (x.to_sparse(), y),
}  # fmt: skip
WHOLE = {
    "a split missing": lambda e: {k: v for k, v in e.items() if k != "val"},
    "an extra split": lambda e: {**e, "extra": e["val"]},
    "a list of splits": lambda e: list(e.values()),
}


@pytest.fixture
def good(tmp_path, cache) -> tuple[Path, dict[str, torch.Tensor], dict]:
    """MNIST files, their decoded images, and the cache entry `load` wrote for them."""
    root = write_mnist(tmp_path / "data", "MNIST")
    images = load(root)
    (entry,) = entries(cache)
    return root, images, torch.load(entry, weights_only=True)


def assert_rebuilt(root: Path, cache: Path, images: dict, caplog, problem: str) -> None:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convattn"):
        again = load(root)
    assert again.keys() == images.keys() and all(torch.equal(images[k], again[k]) for k in images)
    assert "does not hold the expected splits" in caplog.text, caplog.text
    assert problem in caplog.text, caplog.text
    (entry,) = entries(cache)
    assert check_entry(torch.load(entry, weights_only=True), EXPECTED) is None  # rewritten


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    split=st.sampled_from(SPLITS),
    bad_label=st.integers(10, 2**62) | st.integers(-(2**62), -1),
)
def test_an_entry_that_does_not_fit_the_module_is_rebuilt(
    good, cache, caplog, split, mutation, bad_label
) -> None:
    root, images, entry = good
    tampered = {**entry, split: MUTATIONS[mutation](*entry[split], bad_label)}
    assert check_entry(tampered, EXPECTED) is not None
    (path,) = entries(cache)
    torch.save(tampered, path)  # the cache's own format, the wrong content
    assert_rebuilt(root, cache, images, caplog, f"split {split!r}")


@pytest.mark.parametrize("change", sorted(WHOLE))
def test_an_entry_without_the_three_splits_is_rebuilt(good, cache, caplog, change) -> None:
    root, images, entry = good
    (path,) = entries(cache)
    torch.save(WHOLE[change](entry), path)
    assert_rebuilt(root, cache, images, caplog, "not the splits")


def test_the_entry_load_writes_fits_and_a_fitting_entry_is_used(good, cache) -> None:
    root, _, entry = good
    assert check_entry(entry, EXPECTED) is None
    assert check_entry(entry, Expected(1, 28, 10)) is not None  # another size
    assert check_entry(entry, Expected(3, 32, 10)) is not None  # other channels
    assert check_entry(entry, Expected(1, 32, 5)) is not None  # fewer classes than its labels
    (path,) = entries(cache)
    flipped = {k: (x.flip(-1), y) for k, (x, y) in entry.items()}  # fits: used as it is
    torch.save(flipped, path)
    assert torch.equal(load(root)["train"], flipped["train"][0])


def test_splits_that_would_not_pass_are_not_cached(tmp_path, cache, caplog) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"data")
    bad = {k: (torch.zeros(4, 1, 32, 32, dtype=torch.uint8), torch.arange(4)) for k in SPLITS}
    bad["test"] = (bad["test"][0], torch.arange(4) + 20)  # labels beyond num_classes
    with caplog.at_level(logging.WARNING, logger="convattn"):
        got = cached_splits([source], {}, lambda: bad, EXPECTED)
    assert got is bad and not entries(cache)
    assert "Not caching" in caplog.text and "labels from 20 to 23" in caplog.text


def test_opening_the_cache_clears_stale_temps_of_killed_writers(tmp_path, cache) -> None:
    root = write_mnist(tmp_path / "data", "MNIST")
    load(root)
    (entry,) = entries(cache)
    stale = entry.with_name(f".{entry.name}.k1ll3d_0.tmp")  # mkstemp's pattern
    fresh = entry.with_name(f".{entry.name}.wr1t1ng_.tmp")  # perhaps a job writing right now
    for path in (stale, fresh):
        path.write_bytes(b"half an entry")
    past = time.time() - 2 * 3600
    os.utime(stale, (past, past))
    load(root)
    assert not stale.exists() and fresh.exists() and entries(cache) == [entry]


def test_entries_are_readable_to_the_group_under_a_shared_umask(tmp_path, cache) -> None:
    mask = os.umask(0o002)
    try:
        load(write_mnist(tmp_path / "data", "MNIST"))
    finally:
        os.umask(mask)
    (entry,) = entries(cache)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o664

"""The decode cache: built once, reused, keyed by the source files, rebuilt when corrupt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers.data_formats import write_mnist

from convattn.data.torchvision_sets import MNISTDataModule


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

"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 in torchvision's file layouts, held in memory.

Files are where torchvision's dataset classes put them under `root` (`data.root`), and
`download=True` downloads them with those classes:

    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte      (or the .gz files)
    <root>/FashionMNIST/raw/...                                         (same names)
    <root>/cifar-10-batches-py/data_batch_1..5, test_batch              (python pickles)
    <root>/cifar-100-python/train, test                                 (python pickles)

The official training set is split into train and a fixed, stratified, seeded validation
hold-out (`val_fraction`, `split_seed`); test is the official test set.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torchvision import datasets

from convattn.data.in_memory import InMemoryDataModule, Split
from convattn.data.splits import stratified_holdout
from convattn.errors import ConvattnError


class TorchvisionDataModule(InMemoryDataModule):
    """Base: file checks, download, train/val hold-out; subclasses read their format."""

    dataset_cls: ClassVar[type]  # torchvision's class: download and file names
    title: ClassVar[str]  # for messages
    download_size: ClassVar[str]
    files_note: ClassVar[str] = ""

    def __init__(
        self,
        root: str | os.PathLike = "data",
        download: bool = False,
        img_size: int = 32,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        imbalance: float | None = None,
        balanced_sampler: bool = False,
        hflip: bool = False,
        crop_padding: int = 0,
        randaugment: float = 0,
        randaugment_ops: int = 2,
    ) -> None:
        if not 0 < val_fraction < 1:
            raise ConvattnError(
                f"data.val_fraction={val_fraction!r} must be in (0, 1): the share of the official "
                "training set held out for validation."
            )
        super().__init__(
            img_size=img_size,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            split_seed=split_seed,
            imbalance=imbalance,
            balanced_sampler=balanced_sampler,
            hflip=hflip,
            crop_padding=crop_padding,
            randaugment=randaugment,
            randaugment_ops=randaugment_ops,
        )
        self.root = Path(root).expanduser()
        self.download = download
        if not download:  # fail now, before the model is built, not after
            self.check_files()

    @property
    def folder(self) -> Path:
        raise NotImplementedError

    def expected_files(self) -> list[str]:
        raise NotImplementedError

    def missing_files(self) -> list[str]:
        return [name for name in self.expected_files() if not (self.folder / name).is_file()]

    def check_files(self) -> None:
        """Raise a ConvattnError naming the folder, the files and `data.download=true`."""
        missing = self.missing_files()
        if not missing:
            return
        expected = self.expected_files()
        which = "all" if len(missing) == len(expected) else ", ".join(missing)
        raise ConvattnError(
            f"{self.title} not found in data.root={self.root}: expected the folder "
            f"{self.folder.absolute()} with the files {', '.join(expected)}{self.files_note} "
            f"(missing: {which}). "
            "Point data.root at the "
            f"folder that holds {self.folder.relative_to(self.root)}, or add data.download=true "
            f"to download it there ({self.download_size})."
        )

    def prepare_data(self) -> None:
        """Download (once, on one process) when `download=True` and files are missing."""
        if not self.download or not self.missing_files():
            return
        try:
            for train in (True, False):
                self.dataset_cls(str(self.root), train=train, download=True)
        except Exception as err:  # no network, a full disk, a checksum mismatch
            raise ConvattnError(
                f"Downloading {self.title} into {self.root} failed ({type(err).__name__}: {err}). "
                f"Download it by hand into {self.folder} and run with data.download=false."
            ) from err

    def read_split(self, train: bool) -> Split:
        """(uint8 images (N, C, H, W), labels) of the official train or test split."""
        raise NotImplementedError

    def load_splits(self) -> dict[str, Split]:
        self.prepare_data()  # a no-op unless downloading; Lightning calls it first anyway
        self.check_files()
        images, labels = self.read_split(train=True)
        test_images, test_labels = self.read_split(train=False)
        for split, y in (("training", labels), ("test", test_labels)):
            if len(y) and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes:
                raise ConvattnError(
                    f"The {split} labels of {self.title} in {self.folder} run from {int(y.min())} "
                    f"to {int(y.max())}; expected 0 to {self.num_classes - 1}."
                )
        hp = self.hparams
        train, val = stratified_holdout(labels, hp.val_fraction, hp.split_seed)
        return {
            "train": (images[train], labels[train]),
            "val": (images[val], labels[val]),
            "test": (test_images, test_labels),
        }


class MNISTDataModule(TorchvisionDataModule):
    """MNIST: 60,000 + 10,000 grey 28x28 handwritten digits, read by torchvision.datasets.MNIST."""

    dataset_cls = datasets.MNIST
    title = "MNIST"
    download_size = "about 12 MB"
    files_note = " (or the same names + .gz, as distributed)"
    in_chans = 1
    num_classes = 10
    name = "mnist"

    @property
    def folder(self) -> Path:
        return self.root / self.dataset_cls.__name__ / "raw"

    def expected_files(self) -> list[str]:
        return [os.path.splitext(name)[0] for name, _ in self.dataset_cls.resources]

    def missing_files(self) -> list[str]:
        # The gzip'd files as distributed count too: read_split unpacks them.
        return [
            name
            for name in self.expected_files()
            if not (self.folder / name).is_file() and not (self.folder / f"{name}.gz").is_file()
        ]

    def unpack_gzip(self) -> None:
        """torchvision reads the unpacked idx files; unpack any that only exist as .gz."""
        for name in self.expected_files():
            target = self.folder / name
            if not target.is_file() and target.with_name(f"{name}.gz").is_file():
                partial = target.with_name(f"{name}.{os.getpid()}.partial")
                with (
                    gzip.open(target.with_name(f"{name}.gz"), "rb") as src,
                    open(partial, "wb") as dst,
                ):
                    shutil.copyfileobj(src, dst)
                partial.replace(target)  # atomic: a concurrent process never sees half a file

    def read_split(self, train: bool) -> Split:
        self.unpack_gzip()
        try:
            data = self.dataset_cls(str(self.root), train=train, download=False)
        except (AssertionError, RuntimeError, TypeError, ValueError, OSError) as err:
            raise ConvattnError(
                f"Could not read {self.title} from {self.folder}: the files must be the idx files "
                f"{', '.join(self.expected_files())} ({type(err).__name__}: {err})."
            ) from err
        return data.data.unsqueeze(1).contiguous(), data.targets.long()


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST: MNIST's format and sizes with 10 kinds of clothing."""

    dataset_cls = datasets.FashionMNIST
    title = "Fashion-MNIST"
    download_size = "about 30 MB"
    name = "fashion_mnist"


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images, python-pickle version.

    The pickles are read here rather than by torchvision.datasets.CIFAR10, which insists on the
    official MD5 of every file; the format (uint8 rows of 3,072 = 3 x 32 x 32 channel-first
    values plus a label list) is the same, so any file torchvision writes is read here.
    """

    dataset_cls = datasets.CIFAR10
    title = "CIFAR-10"
    download_size = "about 170 MB"
    label_key = "labels"
    in_chans = 3
    num_classes = 10
    name = "cifar10"

    @property
    def folder(self) -> Path:
        return self.root / self.dataset_cls.base_folder

    def expected_files(self) -> list[str]:
        return [name for name, _ in self.dataset_cls.train_list + self.dataset_cls.test_list]

    def read_split(self, train: bool) -> Split:
        files = self.dataset_cls.train_list if train else self.dataset_cls.test_list
        images, labels = [], []
        for name, _ in files:
            entry = self.read_pickle(self.folder / name)
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.append(np.asarray(entry[self.label_key], dtype=np.int64))
        return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))

    def read_pickle(self, path: Path) -> dict[str, Any]:
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            rows = np.asarray(entry["data"])
            if rows.ndim != 2 or rows.shape[1] != 3072 or len(rows) != len(entry[self.label_key]):
                raise ValueError(f"'data' has shape {rows.shape}")
        except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as err:
            raise ConvattnError(
                f"Could not read {path} as a {self.title} python-pickle batch: it must hold "
                f"'data' (uint8 rows of 3072 values) and '{self.label_key}' (one per row) "
                f"({type(err).__name__}: {err})."
            ) from err
        return entry


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: CIFAR-10's format with 100 fine classes (`fine_labels`)."""

    dataset_cls = datasets.CIFAR100
    title = "CIFAR-100"
    download_size = "about 170 MB"
    label_key = "fine_labels"
    num_classes = 100
    name = "cifar100"

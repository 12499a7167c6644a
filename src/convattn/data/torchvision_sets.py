"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 from their distributed files, held in memory.

Files are looked for under `root` (`data.root`) in torchvision's layouts, and `download=True`
downloads them there with torchvision's dataset classes:

    <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    <root>/FashionMNIST/raw/...        (same names; or the four files directly in <root>)
    <root>/cifar-10-batches-py/data_batch_1..5, test_batch              (python pickles)
    <root>/cifar-100-python/train, test                                 (python pickles)

Fashion-MNIST is also found where Debian's `dataset-fashion-mnist` package installs it
(/usr/share/datasets/fashion-mnist), so it needs no configuration once that package is in.

The official training set is split into train and a fixed, stratified, seeded validation
hold-out (`val_fraction`, `split_seed`); test is the official test set.
"""

from __future__ import annotations

import logging
import os
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from convattn.data.idx_files import IDX_FILES, read_idx
from convattn.data.in_memory import InMemoryDataModule, Split
from convattn.data.registry import register_dataset
from convattn.data.safe_pickle import read_data_pickle
from convattn.data.splits import stratified_holdout
from convattn.errors import ConvattnError

log = logging.getLogger("convattn")


class TorchvisionDataModule(InMemoryDataModule):
    """Base: finds the files, downloads on request, holds out validation; subclasses read."""

    title: ClassVar[str]  # for messages
    download_size: ClassVar[str]
    dataset_class: ClassVar[str]  # torchvision.datasets.<name>: download and folder name
    files_note: ClassVar[str] = ""
    # The files are found under `root` (and key the decode cache themselves).
    plumbing = InMemoryDataModule.plumbing | {"root", "download"}
    after_decode = InMemoryDataModule.after_decode | {"root", "download"}

    def __init__(
        self, root: str | os.PathLike = "data", download: bool = False, **options: Any
    ) -> None:
        super().__init__(**options)
        self.root = Path(root).expanduser()
        self.download = download
        if not download:  # fail now, before the model is built, not after
            self.check_files()

    def candidate_folders(self) -> list[Path]:
        """Where the files may be, in order of preference."""
        raise NotImplementedError

    def expected_files(self) -> list[str]:
        raise NotImplementedError

    def has_file(self, folder: Path, name: str) -> bool:
        return (folder / name).is_file()

    def missing_files(self, folder: Path) -> list[str]:
        return [name for name in self.expected_files() if not self.has_file(folder, name)]

    @property
    def folder(self) -> Path:
        """The first candidate folder that holds every file (else the preferred one)."""
        candidates = self.candidate_folders()
        return next((f for f in candidates if not self.missing_files(f)), candidates[0])

    def source_files(self) -> list[Path]:
        self.check_files()  # the cache is keyed by the files: they must all be there
        return [self.folder / name for name in self.expected_files()]

    def missing_hint(self) -> str:
        return ""

    def check_files(self) -> None:
        """Raise a ConvattnError naming the folders, the files and `data.download=true`."""
        folder = self.folder
        missing = self.missing_files(folder)
        if not missing:
            return
        expected = self.expected_files()
        which = "all" if len(missing) == len(expected) else ", ".join(missing)
        looked = ", ".join(str(f.absolute()) for f in self.candidate_folders())
        raise ConvattnError(
            f"{self.title} not found in data.root={self.root}: expected the files "
            f"{', '.join(expected)}{self.files_note} in {folder.absolute()} (missing: {which}; "
            f"looked in {looked}). Point data.root at the folder that holds "
            f"{folder.relative_to(self.root) if folder.is_relative_to(self.root) else folder}, "
            f"{self.missing_hint()}or add data.download=true to download it there "
            f"({self.download_size})."
        )

    def prepare_data(self) -> None:
        """Download (once, on one process) when `download=True` and files are missing."""
        if not self.download or not self.missing_files(self.folder):
            return
        from torchvision import datasets

        try:
            for train in (True, False):
                getattr(datasets, self.dataset_class)(str(self.root), train=train, download=True)
        except Exception as err:  # no network, a full disk, a checksum mismatch
            raise ConvattnError(
                f"Downloading {self.title} into {self.root} failed ({type(err).__name__}: {err}). "
                f"Download it by hand into {self.candidate_folders()[0]} and run with "
                "data.download=false."
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
            if not len(y):  # nothing to learn from or to score: say so, not crash later
                raise ConvattnError(
                    f"The {split} files of {self.title} in {self.folder} hold no images; "
                    f"expected {', '.join(self.expected_files())} as distributed."
                )
            if not 0 <= int(y.min()) <= int(y.max()) < self.num_classes:
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


@register_dataset("mnist")
class MNISTDataModule(TorchvisionDataModule):
    """MNIST: 60,000 + 10,000 grey 28x28 handwritten digits (IDX files, plain or .gz)."""

    title = "MNIST"
    download_size = "about 12 MB"
    dataset_class = "MNIST"
    files_note = " (or the same names + .gz, as distributed)"
    system_folders: ClassVar[tuple[str, ...]] = ()
    in_chans = 1
    num_classes = 10

    def candidate_folders(self) -> list[Path]:
        # torchvision's layout, a flat folder of the four files, then system-wide packages.
        return [self.root / self.dataset_class / "raw", self.root] + [
            Path(f) for f in self.system_folders
        ]

    def expected_files(self) -> list[str]:
        return list(IDX_FILES)

    def has_file(self, folder: Path, name: str) -> bool:
        return (folder / name).is_file() or (folder / f"{name}.gz").is_file()

    def source_files(self) -> list[Path]:
        self.check_files()
        return [self.idx_path(name) for name in self.expected_files()]

    def idx_path(self, name: str) -> Path:
        plain = self.folder / name
        return plain if plain.is_file() else plain.with_name(f"{name}.gz")

    def read_split(self, train: bool) -> Split:
        prefix = "train" if train else "t10k"
        images = self.read_file(f"{prefix}-images-idx3-ubyte", "images (N, height, width)", 3)
        labels = self.read_file(f"{prefix}-labels-idx1-ubyte", "labels (N)", 1)
        if len(images) != len(labels):
            raise ConvattnError(
                f"{self.title}'s {prefix} files in {self.folder} do not pair: "
                f"{len(images)} images but {len(labels)} labels; the images file and the "
                "labels file must hold the same number of entries."
            )
        images = torch.from_numpy(images.copy()).unsqueeze(1)
        return images, torch.from_numpy(labels.astype(np.int64))

    def read_file(self, name: str, what: str, ndim: int) -> np.ndarray:
        """One IDX file of `ndim` dimensions (none of them 0 but the count); errors name it."""
        path = self.idx_path(name)
        try:
            array = read_idx(path)
            if array.ndim != ndim or 0 in array.shape[1:]:
                raise ValueError(f"shape {array.shape}, expected {what}")
        except (OSError, EOFError, ValueError, zlib.error) as err:
            raise ConvattnError(
                f"Could not read {path} as {self.title} {what}: it must be the IDX file "
                f"{name} as distributed, plain or .gz ({type(err).__name__}: {err})."
            ) from None
        return array


@register_dataset("fashion_mnist")
class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST: MNIST's format and sizes with 10 kinds of clothing."""

    title = "Fashion-MNIST"
    download_size = "about 30 MB"
    dataset_class = "FashionMNIST"
    system_folders = ("/usr/share/datasets/fashion-mnist",)  # Debian's dataset-fashion-mnist
    CLASSES = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip

    @property
    def classes(self) -> list[str]:
        return list(self.CLASSES)

    def missing_hint(self) -> str:
        return "install Debian's package (apt-get install dataset-fashion-mnist), "


@register_dataset("cifar10")
class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images, python-pickle version.

    The pickles are read here rather than by torchvision.datasets.CIFAR10, which insists on the
    official MD5 of every file; the format (uint8 rows of 3,072 = 3 x 32 x 32 channel-first
    values plus a label list) is the same, so any file torchvision writes is read here.
    """

    title = "CIFAR-10"
    download_size = "about 170 MB"
    dataset_class = "CIFAR10"
    base_folder = "cifar-10-batches-py"
    train_files: ClassVar[tuple[str, ...]] = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files: ClassVar[tuple[str, ...]] = ("test_batch",)
    label_key = "labels"
    in_chans = 3
    num_classes = 10

    def candidate_folders(self) -> list[Path]:
        return [self.root / self.base_folder]

    def expected_files(self) -> list[str]:
        return [*self.train_files, *self.test_files]

    def read_split(self, train: bool) -> Split:
        images, labels = [], []
        for name in self.train_files if train else self.test_files:
            rows, y = self.read_pickle(self.folder / name)
            images.append(rows.reshape(-1, 3, 32, 32))
            labels.append(y)
        return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))

    def read_pickle(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 rows (N, 3072), int64 labels (N,)) of one batch file.

        CIFAR's official python version is pickles, read here with `safe_pickle` (plain
        containers and numpy arrays only: the folder may be named by a foreign run dir).
        """
        try:
            entry = read_data_pickle(path, f"a {self.title} batch")
            rows = np.asarray(entry["data"])
            labels = np.asarray(entry[self.label_key])
            if rows.ndim != 2 or rows.shape[1] != 3072 or rows.dtype.kind not in "ui":
                raise ValueError(f"'data' is {rows.dtype} of shape {rows.shape}")
            if rows.dtype != np.uint8 and rows.size and not 0 <= rows.min() <= rows.max() <= 255:
                raise ValueError(f"'data' runs from {rows.min()} to {rows.max()}")
            if labels.ndim != 1 or len(labels) != len(rows) or labels.dtype.kind not in "ui":
                raise ValueError(
                    f"{len(rows)} rows but '{self.label_key}' is {labels.dtype} of shape "
                    f"{labels.shape}"
                )
        except ConvattnError:
            raise
        except Exception as err:  # a broken pickle raises almost any type: all are bad input
            raise ConvattnError(
                f"Could not read {path} as a {self.title} python-pickle batch: it must hold "
                f"'data' (uint8 rows of 3072 values) and '{self.label_key}' (one integer per "
                f"row) ({type(err).__name__}: {err})."
            ) from None
        return rows.astype(np.uint8, copy=False), labels.astype(np.int64, copy=False)


@register_dataset("cifar100")
class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: CIFAR-10's format with 100 fine classes (`fine_labels`)."""

    title = "CIFAR-100"
    dataset_class = "CIFAR100"
    base_folder = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    label_key = "fine_labels"
    num_classes = 100

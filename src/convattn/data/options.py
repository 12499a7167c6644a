"""Each data module's options: their types and rules, importable without torch.

`convattn.config.check` checks `data.*` against these before the heavy stack loads; a data
module checks its own arguments against the same class when it is built
(`ClassificationDataModule.__init__`). Each dataset declares its options here under the name
it registers with (`@dataset_options(name)`, naming the class `_target_` builds);
`register_dataset` refuses a data module whose options are not declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from convattn.errors import ConvattnError
from convattn.utils.checks import integer, optional, real
from convattn.utils.typed import check_value, typed

_OPTIONS: dict[str, type[DataOptions]] = {}

POSITIVE = integer(1)
FRACTION = real(0, 1, open_low=True, open_high=True)


def dataset_options(name: str) -> Callable[[type[DataOptions]], type[DataOptions]]:
    """Register the options of dataset `name` (its class names the data module's `_target_`)."""

    def wrap(cls: type[DataOptions]) -> type[DataOptions]:
        _OPTIONS[name] = cls
        return cls

    return wrap


def list_dataset_options() -> list[str]:
    return sorted(_OPTIONS)


def options_of_dataset(name: str) -> type[DataOptions]:
    return _OPTIONS[name]


def options_for_target(target: Any) -> tuple[type[DataOptions], bool]:
    """(the options class of the data module `target` names, whether it is declared); an
    undeclared one (a user's own module) is checked on the shared options only."""
    found = next((cls for cls in _OPTIONS.values() if target == cls.TARGET), None)
    return (found, True) if found is not None else (DataOptions, False)


@dataclass
class DataOptions:
    """Options every data module shares (`conf/data/_common.yaml`)."""

    TARGET: ClassVar[str] = ""
    NUM_CLASSES: ClassVar[int | None] = None  # None: known only once the data is read
    _target_: str = ""
    img_size: int = 32
    batch_size: int = 128
    eval_batch_size: int = 512
    val_fraction: float = 0.1
    split_seed: int = 0
    train_fraction: float = 1.0
    imbalance: float | None = None
    balanced_sampler: bool = False
    hflip: bool = False

    def check(self) -> None:
        """One paragraph for the first rule the values break."""
        if self.img_size < 8:
            raise ConvattnError(
                f"data.img_size={self.img_size!r} must be an integer of at least 8."
            )
        for key in ("batch_size", "eval_batch_size"):
            check_value(f"data.{key}", POSITIVE, getattr(self, key), "e.g. 128")
        check_value("data.val_fraction", FRACTION, self.val_fraction,
                    "the share of images held out for validation")  # fmt: skip
        check_value("data.split_seed", integer(0), self.split_seed)
        check_value(
            "data.train_fraction", real(0, 1, open_low=True), self.train_fraction,
            "the share of the training split to train on: a stratified subset; validation and "
            "test stay whole",
        )  # fmt: skip
        check_value(
            "data.imbalance", optional(real(0, 1, open_low=True)), self.imbalance,
            "the rarest class keeps that share of the most frequent class's training images, "
            "e.g. data.imbalance=0.1 (ratio 10) or 0.01 (ratio 100); null = the data as it is",
        )  # fmt: skip


def check_data(values: dict[str, Any]) -> DataOptions:
    """`data.*` as typed options, checked: one paragraph for the first mistake."""
    cls, declared = options_for_target(values.get("_target_"))
    options = typed(cls, values, "data", closed=declared)
    options.check()
    return options


@dataclass
class InMemoryOptions(DataOptions):
    """Datasets decoded once into memory (`conf/data/_in_memory.yaml`)."""

    crop_padding: int = 0
    randaugment: float = 0.0
    randaugment_ops: int = 2

    def check(self) -> None:
        super().check()
        check_value(
            "data.crop_padding", integer(0, self.img_size - 1), self.crop_padding,
            "pixels of zero padding for the random crop, 0 = no crop",
        )  # fmt: skip
        check_value("data.randaugment", real(0, 10), self.randaugment, "a magnitude; 0 = off")
        check_value("data.randaugment_ops", integer(0, 16), self.randaugment_ops)


@dataset_options("digits")
@dataclass
class DigitsOptions(InMemoryOptions):
    TARGET: ClassVar[str] = "convattn.data.digits.DigitsDataModule"
    NUM_CLASSES: ClassVar[int | None] = 10
    test_fraction: float = 0.2
    batch_size: int = 64
    eval_batch_size: int = 256

    def check(self) -> None:
        super().check()
        if not self.test_fraction > 0 or self.val_fraction + self.test_fraction >= 1:
            raise ConvattnError(
                f"data.val_fraction={self.val_fraction} and data.test_fraction="
                f"{self.test_fraction} must be positive and sum to less than 1."
            )


@dataclass
class FileOptions(InMemoryOptions):
    """Datasets read from torchvision's files under `root`."""

    root: Any = "data"  # a path
    download: bool = False


@dataset_options("mnist")
@dataclass
class MNISTOptions(FileOptions):
    TARGET: ClassVar[str] = "convattn.data.torchvision_sets.MNISTDataModule"
    NUM_CLASSES: ClassVar[int | None] = 10


@dataset_options("fashion_mnist")
@dataclass
class FashionMNISTOptions(FileOptions):
    TARGET: ClassVar[str] = "convattn.data.torchvision_sets.FashionMNISTDataModule"
    NUM_CLASSES: ClassVar[int | None] = 10


@dataset_options("cifar10")
@dataclass
class CIFAR10Options(FileOptions):
    TARGET: ClassVar[str] = "convattn.data.torchvision_sets.CIFAR10DataModule"
    NUM_CLASSES: ClassVar[int | None] = 10


@dataset_options("cifar100")
@dataclass
class CIFAR100Options(FileOptions):
    TARGET: ClassVar[str] = "convattn.data.torchvision_sets.CIFAR100DataModule"
    NUM_CLASSES: ClassVar[int | None] = 100


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm's IMAGENET_DEFAULT_MEAN / STD
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataset_options("imagefolder")
@dataclass
class ImageFolderOptions(DataOptions):
    TARGET: ClassVar[str] = "convattn.data.image_folder.ImageFolderDataModule"
    root: Any = "data"  # a path
    download: bool = False
    num_workers: int | None = None
    auto_augment: str | None = "rand-m9-mstd0.5"
    re_prob: float = 0.25
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    skip_corrupt: bool = False
    verify_images: bool = False
    img_size: int = 128
    batch_size: int = 64
    eval_batch_size: int = 128
    hflip: bool = True

    def check(self) -> None:
        super().check()
        if self.download:
            raise ConvattnError(
                f"data.download=true: an image folder cannot be downloaded. Put the images in "
                f"{self.root}/train/<class>/ and {self.root}/val/<class>/, or point data.root at "
                "such a tree, e.g. Imagenette (torchvision.datasets.Imagenette(root, "
                "download=True) writes imagenette2/train and imagenette2/val)."
            )
        check_value("data.crop_pct", real(0, 1, open_low=True), self.crop_pct)
        check_value("data.re_prob", real(0, 1), self.re_prob, "the random-erasing probability")
        check_value(
            "data.num_workers", optional(integer(0)), self.num_workers,
            "null = this rank's share of the cores",
        )  # fmt: skip

"""Image-folder datasets streamed from disk: Imagenette, ImageNet, or a user's own images.

    <root>/train/<class>/<image>     required
    <root>/val/<class>/<image>       optional: else a stratified, seeded `val_fraction` of train
    <root>/test/<class>/<image>      optional: else the test split is val

Images of any size and PIL mode are decoded per sample in DataLoader worker processes and
converted to RGB (see `image_files.to_rgb`: grey is copied to 3 channels, alpha is dropped), so
`in_chans` is always 3. Training uses timm's transform factory (random-resized crop,
RandAugment, flip, random erasing); evaluation resizes and centre-crops by `crop_pct`.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from torch.utils.data import DataLoader

from convattn.data.image_files import RGBImageFolder, check_tree, find_corrupt
from convattn.data.imbalance import balanced_sampler, check_imbalance, long_tail_indices
from convattn.data.resumable import resumable_loader
from convattn.data.splits import stratified_holdout
from convattn.errors import ConvattnError

log = logging.getLogger("convattn")


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset / container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class ImageFolderDataModule(L.LightningDataModule):
    """Class-folder images streamed from disk with worker processes and timm transforms.

    The class folders are read (and checked) when the module is built, so `num_classes` is
    known before any image is. Unreadable images fail the run with a `CorruptImageError`
    naming the file when a worker reaches it; `verify_images=true` finds them all up front
    instead, and `skip_corrupt=true` (which implies it) drops them and logs how many. The
    up-front pass costs one full decode of every image (see `image_files.find_corrupt`).
    """

    in_chans = 3
    name = "imagefolder"

    def __init__(
        self,
        root: str | os.PathLike = "data",
        download: bool = False,
        img_size: int = 128,
        batch_size: int = 64,
        eval_batch_size: int = 128,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        imbalance: float | None = None,
        balanced_sampler: bool = False,
        hflip: bool = True,
        num_workers: int | None = None,
        auto_augment: str | None = "rand-m9-mstd0.5",
        re_prob: float = 0.25,
        crop_pct: float = 0.875,
        interpolation: str = "bicubic",
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
        skip_corrupt: bool = False,
        verify_images: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(root).expanduser()
        if download:
            raise ConvattnError(
                f"data.download=true: an image folder cannot be downloaded. Put the images in "
                f"{self.root}/train/<class>/ and {self.root}/val/<class>/, or point data.root at "
                "such a tree, e.g. Imagenette (torchvision.datasets.Imagenette(root, "
                "download=True) writes imagenette2/train and imagenette2/val)."
            )
        if not (isinstance(img_size, int) and img_size >= 8):
            raise ConvattnError(f"data.img_size={img_size!r} must be an integer of at least 8.")
        if not 0 < crop_pct <= 1:
            raise ConvattnError(f"data.crop_pct={crop_pct!r} must be in (0, 1].")
        if num_workers is not None and not (isinstance(num_workers, int) and num_workers >= 0):
            raise ConvattnError(
                f"data.num_workers={num_workers!r} must be null (all cores) or an integer >= 0."
            )
        check_imbalance(imbalance)
        if not (self.root / "train").is_dir():
            raise ConvattnError(
                f"No training images: {self.root / 'train'} does not exist. data.root="
                f"{self.root} must hold train/<class>/<image> and val/<class>/<image> (and "
                "optionally test/<class>/<image>), one folder per class."
            )
        self.has_val = (self.root / "val").is_dir()
        self.has_test = (self.root / "test").is_dir()
        if not self.has_val and not 0 < val_fraction < 1:
            raise ConvattnError(
                f"{self.root} has no val/ folder, so validation images are held out of train/; "
                f"data.val_fraction={val_fraction!r} must then be in (0, 1)."
            )
        splits = ["train"] + ["val"] * self.has_val + ["test"] * self.has_test
        self.classes = check_tree(self.root, splits)
        self.num_classes = len(self.classes)
        self.save_hyperparameters()
        self.img_size = img_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = available_cores() if num_workers is None else num_workers
        self.datasets: dict[str, RGBImageFolder] = {}
        self.skipped: dict[str, list[tuple[str, str]]] = {}

    def transforms(self) -> tuple[Callable, Callable]:
        """timm's training transform (RandAugment, flip, erasing) and its eval transform."""
        hp = self.hparams
        common = {"mean": tuple(hp.mean), "std": tuple(hp.std), "interpolation": hp.interpolation}
        train = create_transform(
            hp.img_size,
            is_training=True,
            auto_augment=hp.auto_augment,
            re_prob=hp.re_prob,
            hflip=0.5 if hp.hflip else 0.0,
            **common,
        )
        evaluate = create_transform(hp.img_size, is_training=False, crop_pct=hp.crop_pct, **common)
        return train, evaluate

    def drop_corrupt(self, split: str, dataset: RGBImageFolder) -> None:
        """The up-front check: raise on unreadable files, or drop and count them."""
        bad = find_corrupt([path for path, _ in dataset.samples], threads=self.num_workers)
        if not bad:
            return
        if not self.hparams.skip_corrupt:
            shown = "; ".join(f"{path} ({why})" for path, why in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ConvattnError(
                f"{len(bad)} unreadable image file(s) in {self.root / split}: {shown}{more}. "
                "Replace or delete them, or set data.skip_corrupt=true to skip them."
            )
        bad_paths = {path for path, _ in bad}
        dataset.keep([i for i, (p, _) in enumerate(dataset.samples) if p not in bad_paths])
        self.skipped[split] = bad
        log.warning(
            "Skipped %d unreadable image(s) of %d in %s (data.skip_corrupt=true): %s",
            len(bad),
            len(bad) + len(dataset),
            self.root / split,
            ", ".join(path for path, _ in bad[:5]) + (" ..." if len(bad) > 5 else ""),
        )

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        train_tf, eval_tf = self.transforms()
        found = {"train": RGBImageFolder(self.root / "train", self.classes, train_tf)}
        for split in ("val", "test"):
            if (self.root / split).is_dir():
                found[split] = RGBImageFolder(self.root / split, self.classes, eval_tf)
        if hp.verify_images or hp.skip_corrupt:
            for split, dataset in found.items():
                self.drop_corrupt(split, dataset)
        train = found["train"]
        if "val" not in found:  # hold out of train/, with the eval transform
            labels = torch.as_tensor(train.targets)
            keep, held_out = stratified_holdout(labels, hp.val_fraction, hp.split_seed)
            found["val"] = copy.copy(train).keep(held_out.tolist())
            found["val"].transform = eval_tf
            train.keep(keep.tolist())
        if hp.imbalance is not None:  # the training split only
            labels = torch.as_tensor(train.targets)
            train.keep(long_tail_indices(labels, self.num_classes, hp.imbalance, hp.split_seed))
            log.info("Long-tailed training set (imbalance %s): %d images", hp.imbalance, len(train))
        found.setdefault("test", found["val"])
        self.datasets = found

    def class_counts(self) -> torch.Tensor:
        """Number of training images per class (after skipping, hold-out and `imbalance`)."""
        self.setup()
        return torch.bincount(
            torch.as_tensor(self.datasets["train"].targets), minlength=self.num_classes
        )

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        dataset = self.datasets[split]
        train = split == "train"
        sampler = None
        if train and self.hparams.balanced_sampler:
            sampler = balanced_sampler(torch.as_tensor(dataset.targets), self.num_classes)
        return resumable_loader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,  # no worker start-up cost every epoch
            pin_memory=torch.cuda.is_available(),
            drop_last=train and len(dataset) % batch_size == 1,  # BatchNorm needs 2+ images
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

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

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from convattn.data.base import ClassificationDataModule
from convattn.data.image_files import RGBImageFolder, check_tree, find_corrupt
from convattn.data.registry import register_dataset
from convattn.data.splits import stratified_holdout
from convattn.errors import ConvattnError

log = logging.getLogger("convattn")

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm's IMAGENET_DEFAULT_MEAN / STD
IMAGENET_STD = (0.229, 0.224, 0.225)


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset / container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cores_per_rank(local_ranks: int) -> int:
    """The CPUs one rank may use: Slurm's cpus-per-task inside a Slurm step (each task is one
    rank), else this machine's cores shared among the ranks on it."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit() and "SLURM_STEP_ID" in os.environ:
        return max(int(slurm), 1)
    return max(available_cores() // max(local_ranks, 1), 1)


@register_dataset("imagefolder")
class ImageFolderDataModule(ClassificationDataModule):
    """Class-folder images streamed from disk with worker processes and timm transforms.

    The class folders are read (and checked) when the module is built, so `num_classes` is
    known before any image is. Unreadable images fail the run with a `CorruptImageError`
    naming the file when a worker reaches it; `verify_images=true` finds them all up front
    instead, and `skip_corrupt=true` (which implies it) drops them and logs how many. The
    up-front pass costs one full decode of every image (see `image_files.find_corrupt`); under
    DDP each rank checks a share and all ranks drop the same files.
    """

    in_chans = 3
    plumbing = ClassificationDataModule.plumbing | {"root", "download", "num_workers"}

    def __init__(
        self,
        root: str | os.PathLike = "data",
        download: bool = False,
        num_workers: int | None = None,
        auto_augment: str | None = "rand-m9-mstd0.5",
        re_prob: float = 0.25,
        crop_pct: float = 0.875,
        interpolation: str = "bicubic",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        skip_corrupt: bool = False,
        verify_images: bool = False,
        img_size: int = 128,
        batch_size: int = 64,
        eval_batch_size: int = 128,
        hflip: bool = True,
        **options: Any,
    ) -> None:
        super().__init__(
            img_size=img_size,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            hflip=hflip,
            **options,
        )
        self.root = Path(root).expanduser()  # the options were checked by super().__init__
        if not (self.root / "train").is_dir():
            raise ConvattnError(
                f"No training images: {self.root / 'train'} does not exist. data.root="
                f"{self.root} must hold train/<class>/<image> and val/<class>/<image> (and "
                "optionally test/<class>/<image>), one folder per class."
            )
        splits = [s for s in ("train", "val", "test") if (self.root / s).is_dir()]
        self._classes = check_tree(self.root, splits)
        self.num_classes = len(self._classes)
        self.skipped: dict[str, list[tuple[str, str]]] = {}

    @property
    def classes(self) -> list[str]:
        return list(self._classes)

    @property
    def num_workers(self) -> int:
        """Worker processes per loader: `data.num_workers`, else this rank's share of cores."""
        if self.hparams.num_workers is not None:
            return self.hparams.num_workers
        local_ranks = self.trainer.num_devices if self.trainer is not None else 1
        return cores_per_rank(local_ranks)

    def transforms(self) -> tuple[Callable, Callable]:
        """timm's training transform (RandAugment, flip, erasing) and its eval transform."""
        from timm.data import create_transform  # timm's data pipeline: image folders only

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

    def unreadable(self, dataset: RGBImageFolder) -> list[tuple[str, str]]:
        """(path, why) of every unreadable file; under DDP each rank decodes its share."""
        paths = [path for path, _ in dataset.samples]
        world, rank = self.world_and_rank()
        mine = find_corrupt(paths[rank::world], threads=max(self.num_workers, 1))
        if world > 1 and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, mine)
            mine = sorted(item for part in gathered for item in part)
        return mine

    def drop_corrupt(self, split: str, dataset: RGBImageFolder) -> RGBImageFolder:
        """The up-front check: raise on unreadable files, or drop and count them."""
        bad = self.unreadable(dataset)
        if not bad:
            return dataset
        if not self.hparams.skip_corrupt:
            shown = "; ".join(f"{path} ({why})" for path, why in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ConvattnError(
                f"{len(bad)} unreadable image file(s) in {self.root / split}: {shown}{more}. "
                "Replace or delete them, or set data.skip_corrupt=true to skip them."
            )
        bad_paths = {path for path, _ in bad}
        kept = dataset.select([i for i, (p, _) in enumerate(dataset.samples) if p not in bad_paths])
        self.skipped[split] = bad
        log.warning(
            "Skipped %d unreadable image(s) of %d in %s (data.skip_corrupt=true): %s",
            len(bad),
            len(dataset),
            self.root / split,
            ", ".join(path for path, _ in bad[:5]) + (" ..." if len(bad) > 5 else ""),
        )
        return kept

    def load_datasets(self) -> dict[str, RGBImageFolder]:
        hp = self.hparams
        train_tf, eval_tf = self.transforms()
        found = {"train": RGBImageFolder(self.root / "train", self._classes, train_tf)}
        for split in ("val", "test"):
            if (self.root / split).is_dir():
                found[split] = RGBImageFolder(self.root / split, self._classes, eval_tf)
        if hp.verify_images or hp.skip_corrupt:
            found = {split: self.drop_corrupt(split, ds) for split, ds in found.items()}
        if "val" not in found:  # hold out of train/, with the eval transform
            train = found["train"]
            keep, held_out = stratified_holdout(train.labels, hp.val_fraction, hp.split_seed)
            found["val"] = train.select(held_out)
            found["val"].transform = eval_tf
            found["train"] = train.select(keep)
        found.setdefault("test", found["val"])
        return found

    def loader_options(self, split: str) -> dict[str, Any]:
        workers = self.num_workers
        return {
            "num_workers": workers,
            # Training workers live across epochs (no start-up each epoch); evaluation workers
            # are started per pass, so a rank never holds two idle sets of processes.
            "persistent_workers": split == "train" and workers > 0,
            "pin_memory": torch.cuda.is_available(),
        }

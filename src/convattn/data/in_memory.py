"""Datasets decoded once into memory as tensors, indexed a whole batch at a time.

The fast path for small images (digits, MNIST family, CIFAR): the dataset lives in RAM as one
uint8 tensor (N, C, H, W), a batch is one index op, and augmentation + normalisation run on the
whole batch on the training device (`on_after_batch_transfer`), so no worker processes and no
per-sample PIL work are needed.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from convattn.data.batch_augment import BatchTransform
from convattn.data.imbalance import balanced_sampler, check_imbalance, long_tail_indices
from convattn.data.resumable import resumable_loader
from convattn.errors import ConvattnError

log = logging.getLogger("convattn")

Split = tuple[torch.Tensor, torch.Tensor]  # (images (N, C, H, W), labels (N,))


class TensorBatchDataset(Dataset):
    """(images, labels) tensors; `__getitems__` gathers a batch with one index op.

    The DataLoader calls `__getitems__` with a batch of sampler indices, so samplers (shuffling,
    DistributedSampler) work as usual while skipping per-sample indexing and collation.
    Use it with `collate_fn=keep_batch`.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices)
        return self.images[index], self.labels[index]


def keep_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate function for `TensorBatchDataset`: the batch is already stacked."""
    return batch


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear resize to size x size (antialiased when shrinking), keeping the dtype.

    Done once at decode time, in chunks so that the float copy stays small.
    """
    if images.shape[-2:] == (size, size):
        return images
    shrink = size < min(images.shape[-2:])
    out = []
    for part in images.split(chunk):
        part = F.interpolate(
            part.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
        )
        if images.dtype == torch.uint8:
            part = part.round_().clamp_(0, 255).to(torch.uint8)
        out.append(part)
    return torch.cat(out)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units (uint8 is divided by 255), in float64."""
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for part in images.split(chunk):
        part = part.double() / scale
        total += part.sum(dim=(0, 2, 3))
        squares += part.square().sum(dim=(0, 2, 3))
    n = images.numel() / images.shape[1]
    mean = total / n
    std = (squares / n - mean.square()).clamp(min=1e-12).sqrt()
    return mean.tolist(), std.tolist()


class InMemoryDataModule(L.LightningDataModule):
    """Base class: subclasses set `in_chans`, `num_classes`, `name` and implement `load_splits`.

    `setup` decodes the splits, applies the long-tail `imbalance` to the training split, resizes
    to `img_size` and measures the training set's per-channel mean/std. Loaders yield raw
    batches (uint8, or float in [0, 1]); `on_after_batch_transfer` turns them into normalised
    float batches on the device, augmenting only while the trainer is training. Outside a
    Trainer, call `self.transform(x, train=...)` on a loader's batch yourself.
    """

    in_chans: int
    num_classes: int
    name: str

    def __init__(
        self,
        img_size: int = 32,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        split_seed: int = 0,
        imbalance: float | None = None,
        balanced_sampler: bool = False,
        hflip: bool = False,
        crop_padding: int = 0,
        randaugment: float = 0,
        randaugment_ops: int = 2,
    ) -> None:
        super().__init__()
        if not (isinstance(img_size, int) and img_size >= 8):
            raise ConvattnError(f"data.img_size={img_size!r} must be an integer of at least 8.")
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not (isinstance(value, int) and value >= 1):
                raise ConvattnError(f"data.{key}={value!r} must be a positive integer.")
        if not (isinstance(crop_padding, int) and 0 <= crop_padding < img_size):
            raise ConvattnError(
                f"data.crop_padding={crop_padding!r} must be an integer in [0, img_size): "
                "pixels of zero padding for the random crop, 0 = no crop."
            )
        if not 0 <= randaugment <= 10:
            raise ConvattnError(
                f"data.randaugment={randaugment!r} must be a magnitude in [0, 10]; 0 = off."
            )
        check_imbalance(imbalance)
        self.save_hyperparameters()
        self.img_size = img_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.splits: dict[str, TensorBatchDataset] = {}
        self.transform: BatchTransform | None = None

    def load_splits(self) -> dict[str, Split]:
        """Decoded 'train', 'val' and 'test' splits: uint8 [0, 255] or float [0, 1] images."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        splits = self.load_splits()
        if hp.imbalance is not None:  # the training split only; val/test stay as they are
            images, labels = splits["train"]
            keep = long_tail_indices(labels, self.num_classes, hp.imbalance, hp.split_seed)
            splits["train"] = (images[keep], labels[keep])
            log.info("Long-tailed training set (imbalance %s): %d images", hp.imbalance, len(keep))
        for split, (images, labels) in splits.items():
            self.splits[split] = TensorBatchDataset(resize_images(images, self.img_size), labels)
        # Normalise with training-set statistics only: val/test stay unseen.
        mean, std = channel_stats(self.splits["train"].images)
        self.transform = BatchTransform(
            mean, std, hp.crop_padding, hp.hflip, hp.randaugment, hp.randaugment_ops
        )

    def class_counts(self) -> torch.Tensor:
        """Number of training images per class (after `imbalance`)."""
        self.setup()
        return torch.bincount(self.splits["train"].labels, minlength=self.num_classes)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.splits[split]
        sampler = None
        if split == "train" and self.hparams.balanced_sampler:
            sampler = balanced_sampler(dataset.labels, self.num_classes)
        return resumable_loader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            collate_fn=keep_batch,
            # A last training batch of one image would break BatchNorm; drop only that one.
            drop_last=split == "train" and len(dataset) % batch_size == 1,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(
        self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment (training only), widen to float and normalise, on the batch's device."""
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        return self.transform(images, train=training), labels

"""Datasets decoded once into memory as tensors, indexed a whole batch at a time.

The fast path for small images (digits, MNIST family, CIFAR): the dataset lives in RAM as one
uint8 tensor (N, C, H, W), a batch is one index op, and augmentation + normalisation run on the
whole batch on the training device (`on_after_batch_transfer`), so no worker processes and no
per-sample PIL work are needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from convattn.data.base import Batch, ClassificationDataModule
from convattn.data.batch_augment import BatchTransform
from convattn.data.decode_cache import Expected, Splits, cached_splits

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

    def select(self, index: torch.Tensor) -> TensorBatchDataset:
        return TensorBatchDataset(self.images[index], self.labels[index])


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
    if images.dtype == torch.uint8:
        return histogram_stats(images)
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for part in images.split(chunk):
        part = part.double()
        total += part.sum(dim=(0, 2, 3))
        squares += part.square().sum(dim=(0, 2, 3))
    n = images.numel() / images.shape[1]
    mean = total / n
    std = (squares / n - mean.square()).clamp(min=1e-12).sqrt()
    return mean.tolist(), std.tolist()


def histogram_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """uint8 images: exact moments from a 256-bin count per channel, instead of summing every
    pixel as float64 (the slow part of a cached start on 60,000 images)."""
    levels = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        mean = (counts * levels).sum() / counts.sum()
        var = (counts * (levels - mean).square()).sum() / counts.sum()
        means.append(mean.item())
        stds.append(var.clamp(min=1e-12).sqrt().item())
    return means, stds


class InMemoryDataModule(ClassificationDataModule):
    """Base of the in-memory sets: subclasses set `in_chans` and `num_classes`, implement
    `load_splits` and register under their name (`convattn.data.registry`).

    The splits are decoded once and resized to `img_size`; the training set's per-channel
    mean/std (after the training subset) normalise every batch. Loaders yield raw batches
    (uint8, or float in [0, 1]); `transform_batch` augments (training only: random crop with
    `crop_padding`, `hflip`, `randaugment`), widens to float and normalises on the device.
    """

    # Options applied after decoding (or not about the data at all): they do not key the decode
    # cache. A subclass extends it with its own (where the files are, say).
    after_decode: ClassVar[frozenset[str]] = frozenset({
        "batch_size", "eval_batch_size", "train_fraction", "imbalance", "balanced_sampler",
        "hflip", "crop_padding", "randaugment", "randaugment_ops",
    })  # fmt: skip

    def __init__(
        self,
        crop_padding: int = 0,
        randaugment: float = 0,
        randaugment_ops: int = 2,
        **options: Any,
    ) -> None:
        super().__init__(**options)  # checks these options too (`convattn.data.options`)
        self.transform: BatchTransform | None = None

    def load_splits(self) -> dict[str, Split]:
        """Decoded 'train', 'val' and 'test' splits: uint8 [0, 255] or float [0, 1] images."""
        raise NotImplementedError

    def source_files(self) -> list[Path]:
        """The files the splits are decoded from; they key the decode cache ([]: no cache)."""
        return []

    def load_datasets(self) -> dict[str, TensorBatchDataset]:
        def decode() -> Splits:
            return {
                split: (resize_images(images, self.img_size), labels)
                for split, (images, labels) in self.load_splits().items()
            }

        # What the decoded splits depend on: every option except how they are sampled/augmented.
        settings = {k: v for k, v in self.hparams.items() if k not in self.after_decode}
        settings |= {"module": type(self).__qualname__, "img_size": self.img_size}
        expected = Expected(self.in_chans, self.img_size, self.num_classes)
        splits = cached_splits(self.source_files(), settings, decode, expected)
        return {
            split: TensorBatchDataset(images, labels) for split, (images, labels) in splits.items()
        }

    def on_datasets_ready(self) -> None:
        # Normalise with training-set statistics only: val/test stay unseen.
        hp = self.hparams
        mean, std = channel_stats(self.datasets["train"].images)
        self.transform = BatchTransform(
            mean, std, hp.crop_padding, hp.hflip, hp.randaugment, hp.randaugment_ops
        )

    def loader_options(self, split: str) -> dict[str, Any]:
        return {"collate_fn": keep_batch}  # batches are gathered whole: no workers needed

    def transform_batch(self, batch: Batch, train: bool) -> Batch:
        images, labels = batch
        return self.transform(images, train=train), labels

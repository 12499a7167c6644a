"""Datasets held in memory as tensors, indexed a whole batch at a time."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


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

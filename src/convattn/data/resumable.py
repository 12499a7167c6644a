"""Data loaders that a run resumed mid-epoch continues exactly where it stopped."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Sampler
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import RandomSampler


def resumable_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    sampler: Sampler | None = None,
    **kwargs: Any,
) -> StatefulDataLoader:
    """A DataLoader whose position Lightning saves in every checkpoint.

    Shuffling and worker seeds come from generators of their own, seeded with
    seed_everything's seed: the order depends on the run's seed alone, never on how many random
    numbers were drawn before, and the sampler's state travels with the loader's.
    """
    if sampler is None and shuffle:
        sampler = RandomSampler(
            dataset, generator=torch.Generator().manual_seed(torch.initial_seed())
        )
    return StatefulDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        generator=torch.Generator().manual_seed(torch.initial_seed()),
        **kwargs,
    )

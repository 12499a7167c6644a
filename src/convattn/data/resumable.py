"""Data loaders that a run resumed mid-epoch continues exactly where it stopped."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Sampler
from torchdata.stateful_dataloader import StatefulDataLoader


def resumable_loader(
    dataset: Dataset, batch_size: int, sampler: Sampler, seed: int, **kwargs: Any
) -> StatefulDataLoader:
    """A DataLoader whose position Lightning saves in every checkpoint.

    The order comes from `sampler` (see `ClassificationDataModule.sampler`); worker seeds from a
    generator of its own seeded with the run's seed, so they never depend on how many random
    numbers were drawn before (Lightning's worker_init_fn adds the rank and worker id).
    """
    return StatefulDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )

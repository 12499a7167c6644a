"""Class imbalance on purpose (a long-tailed training set) and its remedy (a balanced sampler)."""

from __future__ import annotations

import torch
from torch.utils.data import WeightedRandomSampler


def long_tail_counts(counts: torch.Tensor, imbalance: float) -> torch.Tensor:
    """Images to keep per class: n_max * imbalance ** (c / (C - 1)) for class index c.

    The exponential profile of Cui et al. 2019 ("Class-Balanced Loss Based on Effective Number
    of Samples"): class 0 keeps n_max images, the last class n_max * imbalance. A class never
    keeps more than it has, and at least one image.
    """
    num_classes = len(counts)
    n_max = int(counts.max())
    exponent = torch.arange(num_classes, dtype=torch.float64) / max(num_classes - 1, 1)
    wanted = (n_max * imbalance**exponent).floor().long().clamp(min=1)
    return torch.minimum(wanted, counts.long())


def balanced_sampler(
    labels: torch.Tensor, num_classes: int, num_samples: int | None = None
) -> WeightedRandomSampler:
    """Draws every class equally often on average: weight 1 / class count, with replacement.

    One epoch is still `len(labels)` draws over all ranks (`num_samples` per rank), so
    epoch-based schedules keep their length. It uses torch's global RNG, which is seeded per
    rank (`convattn.cluster.seeding`), so ranks draw independently.
    """
    counts = torch.bincount(labels, minlength=num_classes).double()
    weights = 1.0 / counts.clamp(min=1)[labels]
    return WeightedRandomSampler(weights, num_samples or len(labels), replacement=True)

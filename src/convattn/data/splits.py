"""Fixed, stratified, seeded splits: every run with the same `split_seed` sees the same images.

Everything here draws per class from one seeded order of that class's images and keeps
prefixes of it, so a split depends on the labels and the seed alone.
"""

from __future__ import annotations

import torch

from convattn.data.imbalance import long_tail_counts


def class_orders(labels: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Per class, the indices of its images in a seeded random order."""
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    generator = torch.Generator().manual_seed(seed)
    orders = []
    for c in range(num_classes):
        members = (labels == c).nonzero().squeeze(1)
        orders.append(members[torch.randperm(len(members), generator=generator)])
    return orders


def proportional_counts(sizes: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per class, its share of round(total * fraction) images: floor of its exact share, plus
    one for the classes with the largest remainders, so that tiny classes add up too."""
    exact = sizes.double() * fraction
    counts = exact.floor().long()
    short = round(float(sizes.sum()) * fraction) - int(counts.sum())
    if short > 0:
        order = torch.argsort(exact - counts, descending=True, stable=True)
        counts[order[:short]] += 1
    return torch.minimum(counts, sizes)


def stratified_split(
    labels: torch.Tensor, fractions: tuple[float, ...], seed: int
) -> list[torch.Tensor]:
    """Sorted indices of len(fractions) + 1 parts: each fraction of the images, stratified by
    class, in order, and the rest last. E.g. (test, val) fractions give [test, val, train]."""
    orders = class_orders(labels, seed)
    sizes = torch.tensor([len(o) for o in orders])
    starts = torch.zeros_like(sizes)
    parts = []
    for fraction in fractions:
        counts = torch.minimum(proportional_counts(sizes, fraction), sizes - starts)
        parts.append([o[s : s + n] for o, s, n in zip(orders, starts, counts, strict=True)])
        starts = starts + counts
    parts.append([o[s:] for o, s in zip(orders, starts, strict=True)])
    return [torch.cat(p).sort().values if p else torch.empty(0, dtype=torch.long) for p in parts]


def stratified_holdout(
    labels: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) holding out a stratified, seeded `val_fraction` of `labels`."""
    val, train = stratified_split(labels, (val_fraction,), seed)
    return train, val


def training_subset(
    labels: torch.Tensor, fraction: float = 1.0, imbalance: float | None = None, seed: int = 0
) -> torch.Tensor | None:
    """Sorted indices of the training images to keep, or None to keep them all.

    Per class, a prefix of the class's seeded order is kept: `imbalance` sets the long-tail
    counts (see `long_tail_counts`), then `fraction` keeps that share of each class (at least
    one image). Prefixes of one order make the subsets nested: for one `seed`, the 1 % subset
    lies inside the 3 % subset, which lies inside the 10 % one.
    """
    if fraction >= 1 and imbalance is None:
        return None
    orders = class_orders(labels, seed)
    counts = torch.tensor([len(o) for o in orders])
    keep = long_tail_counts(counts, imbalance) if imbalance is not None else counts
    if fraction < 1:
        keep = torch.minimum((keep.double() * fraction).round().long().clamp(min=1), counts)
    return torch.cat([o[:k] for o, k in zip(orders, keep.tolist(), strict=True)]).sort().values

"""Fixed, stratified, seeded splits: every run with the same `split_seed` sees the same images."""

from __future__ import annotations

import torch
from sklearn.model_selection import train_test_split


def stratified_split(
    labels: torch.Tensor, val_fraction: float, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of a stratified, seeded train/val/test split."""
    index = torch.arange(len(labels)).numpy()
    y = labels.numpy()
    rest, test = train_test_split(index, test_size=test_fraction, stratify=y, random_state=seed)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=y[rest], random_state=seed)
    return torch.as_tensor(train), torch.as_tensor(val), torch.as_tensor(test)


def stratified_holdout(
    labels: torch.Tensor, val_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) holding out a stratified, seeded `val_fraction` of `labels`."""
    index = torch.arange(len(labels)).numpy()
    y = labels.numpy()
    # Stratify only when every class can give at least one image to each side.
    counts = torch.bincount(labels)
    counts = counts[counts > 0]
    stratify = y if len(labels) * val_fraction >= len(counts) and counts.min() >= 2 else None
    train, val = train_test_split(
        index, test_size=val_fraction, stratify=stratify, random_state=seed
    )
    return torch.as_tensor(train), torch.as_tensor(val)

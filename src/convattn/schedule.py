"""Learning-rate schedule: linear warmup, then cosine decay, stepped per batch."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    start_factor: float,
    min_lr: float,
) -> SequentialLR:
    """Linear warmup over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`."""
    warmup_steps = min(max(warmup_steps, 1), max(total_steps - 1, 1))
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor, 1.0, total_iters=warmup_steps),
            CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1), eta_min=min_lr),
        ],
        milestones=[warmup_steps],
    )

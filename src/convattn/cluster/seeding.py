"""Randomness under DDP: what the ranks share, and what each rank draws for itself.

`seed_everything(seed)` runs once per process before the model and data are built, so every
rank builds the same initial weights and the same data order (the samplers shard one shared
permutation, seeded by the data module's `shuffle_seed`). What must differ per rank is the
rest: the augmentation drawn in the main process (crops, flips, RandAugment ops on the batch),
dropout and drop-path masks, mixup. Without `RankSeed` image i of every rank's shard would get
the same crop and the same mask, and an N-device run would not be the N-times-larger-batch run
it claims to be. Data-loader workers already get per-rank seeds from Lightning's worker_init_fn.
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from convattn.cluster.options import check_seed

# A large prime apart, so rank seeds of neighbouring run seeds do not coincide.
RANK_STRIDE = 1_000_003


def seed_everything(seed: object) -> None:
    """`L.seed_everything` for a seed that is an integer in [0, 2**32 - 1]; anything else is a
    mistake (exit 2), never silently replaced by a random seed as Lightning would."""
    L.seed_everything(check_seed(seed), workers=True, verbose=False)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of `rank`'s own streams: rank 0 keeps the run's seed."""
    return (seed + RANK_STRIDE * rank) % 2**32


def seed_rank_streams(seed: int, rank: int) -> None:
    """Seed torch (CPU and every CUDA device), numpy and `random` with `rank_seed`."""
    value = rank_seed(seed, rank)
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


class RankSeed(Callback):
    """At the start of fit, give each rank of a multi-process run its own random streams.

    Runs in `setup`, after the process group exists and before a checkpoint is restored, so a
    resumed run gets each rank's saved streams back (`convattn.run.resume.ResumeState`). A
    single-process run is left exactly as `seed_everything` seeded it.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.world_size > 1:
            seed_rank_streams(self.seed, trainer.global_rank)

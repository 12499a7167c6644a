"""What every data module offers, so the trainer, reports and explainers never special-case one.

A data module declares `name`, `in_chans`, `num_classes`, `img_size` and `classes`, and
implements `load_datasets()`: the train, val and test splits as `LabelledDataset`s. The base
class does the rest in one place: checking the shared options, the training-set fraction and
long tail (training split only), the global -> per-device batch split from the trainer's world
size, the loaders, and `model_ready`, which turns a raw loader batch into the normalised
tensors the model takes (explainers use it outside a Trainer).
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar, Protocol

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler
from torchdata.stateful_dataloader.sampler import RandomSampler, StatefulDistributedSampler

from convattn.data.imbalance import balanced_sampler
from convattn.data.options import check_data
from convattn.data.resumable import resumable_loader
from convattn.data.splits import training_subset
from convattn.errors import ConvattnError
from convattn.utils.config_tree import target_path

log = logging.getLogger("convattn")

Batch = tuple[torch.Tensor, torch.Tensor]
SPLITS = ("train", "val", "test")


class LabelledDataset(Protocol):
    """A map-style dataset that knows its labels and can be narrowed to some of its items."""

    labels: torch.Tensor

    def __len__(self) -> int: ...

    def select(self, index: torch.Tensor) -> LabelledDataset:
        """The items at `index`, as a dataset of the same kind."""
        ...


def per_device_batch_size(global_batch_size: int, world_size: int) -> int:
    """`data.batch_size` is global: each of the `world_size` processes gets an equal share."""
    if global_batch_size % world_size:
        valid = list(range(world_size, 4 * global_batch_size, world_size))[:6]
        raise ConvattnError(
            f"data.batch_size={global_batch_size} (the global batch) does not divide evenly over "
            f"{world_size} processes; use a multiple of {world_size}, e.g. "
            f"{', '.join(map(str, valid))}."
        )
    return global_batch_size // world_size


class ClassificationDataModule(L.LightningDataModule):
    """Base of every convattn data module: train/val/test splits of labelled images.

    Shared options (every `conf/data/*.yaml` inherits them from `conf/data/_common.yaml`):
    `img_size`, `batch_size` (global, over all devices), `eval_batch_size`, `val_fraction`,
    `split_seed`, `train_fraction` (a nested, stratified, seeded subset of the training split),
    `imbalance` (a long-tailed training split), `balanced_sampler` and `hflip`.

    A subclass registers itself with `convattn.data.registry.register_dataset(name)`, which
    sets `name`, and extends `plumbing` with its own options of that kind.
    """

    name: ClassVar[str]
    # Options that say where the data lives and how it is read, not what is learnt: they are
    # left out of a run's identity (`convattn.run.identity`), so changing them still resumes.
    plumbing: ClassVar[frozenset[str]] = frozenset({"eval_batch_size"})
    in_chans: int
    num_classes: int

    def __init__(
        self,
        img_size: int = 32,
        batch_size: int = 128,
        eval_batch_size: int = 512,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        train_fraction: float = 1.0,
        imbalance: float | None = None,
        balanced_sampler: bool = False,
        hflip: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # every __init__'s arguments, the subclasses' included
        # The same types and rules as the config met before the heavy imports.
        check_data({"_target_": target_path(type(self)), **self.hparams})
        self.img_size = img_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.batch_size_per_device = batch_size
        # The data order's seed: seed_everything(seed) has just run when a data module is built,
        # and per-rank seeding comes later, so every rank shares it (one permutation to shard).
        self.shuffle_seed = torch.initial_seed()
        self.datasets: dict[str, Dataset] = {}

    @property
    def classes(self) -> list[str]:
        """Class names, index order; the class indices as text unless a dataset names them."""
        return [str(i) for i in range(self.num_classes)]

    # ------------------------------------------------------------ what a subclass provides
    def load_datasets(self) -> dict[str, LabelledDataset]:
        """The full 'train', 'val' and 'test' splits (before the training subset)."""
        raise NotImplementedError

    def loader_options(self, split: str) -> dict[str, Any]:
        """Extra DataLoader keyword arguments for `split` (workers, collate_fn, ...)."""
        return {}

    def transform_batch(self, batch: Batch, train: bool) -> Batch:
        """A raw loader batch as the model takes it (augmented only when `train`)."""
        return batch

    # ------------------------------------------------------------ the contract
    def setup(self, stage: str | None = None) -> None:
        if self.trainer is not None:
            self.batch_size_per_device = per_device_batch_size(
                self.batch_size, self.trainer.world_size
            )
        if self.datasets:
            return
        datasets = self.load_datasets()
        hp = self.hparams
        labels = datasets["train"].labels
        keep = training_subset(labels, hp.train_fraction, hp.imbalance, hp.split_seed)
        if keep is not None:
            log.info(
                "Training on %d of %d training images (train_fraction=%s, imbalance=%s)",
                len(keep),
                len(labels),
                hp.train_fraction,
                hp.imbalance,
            )
            datasets["train"] = datasets["train"].select(keep)
        self.datasets = datasets
        self.on_datasets_ready()

    def on_datasets_ready(self) -> None:
        """Called once the splits are final (e.g. to measure training-set statistics)."""

    def class_counts(self) -> torch.Tensor:
        """Number of training images per class (after the training subset)."""
        self.setup()
        return torch.bincount(self.datasets["train"].labels, minlength=self.num_classes)

    def train_size(self) -> int:
        self.setup()
        return len(self.datasets["train"])

    def model_ready(self, batch: Batch) -> Batch:
        """A raw loader batch of val/test images as the model sees them: float, normalised."""
        images, labels = self.transform_batch(batch, train=False)
        return images.float(), labels

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)

    def loader(self, split: str) -> DataLoader:
        """The DataLoader of one split, with this process's share of the batch and the data."""
        dataset = self.datasets[split]
        train = split == "train"
        batch_size = self.batch_size_per_device if train else self.eval_batch_size
        return resumable_loader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler(split),
            seed=self.shuffle_seed,
            drop_last=train and self.last_batch_of_one(len(dataset), batch_size),
            **self.loader_options(split),
        )

    def world_and_rank(self) -> tuple[int, int]:
        """(world size, this process's global rank) from the trainer; (1, 0) without one."""
        if self.trainer is None:
            return 1, 0
        return self.trainer.world_size, self.trainer.global_rank

    def sampler(self, split: str) -> Sampler:
        """Which items this rank reads, and in what order.

        Training shuffles; under DDP a `StatefulDistributedSampler` shards one shared permutation
        (its position is saved, so a resumed run continues the same epoch exactly). Evaluation
        shards without padding, so every image is scored exactly once whatever the world size.
        A balanced sampler draws with replacement from each rank's own stream.
        """
        dataset = self.datasets[split]
        world, rank = self.world_and_rank()
        if split != "train":
            if world == 1:
                return SequentialSampler(dataset)
            return UnrepeatedDistributedSampler(dataset, world, rank, shuffle=False)
        if self.hparams.balanced_sampler:
            return balanced_sampler(
                dataset.labels, self.num_classes, math.ceil(len(dataset) / world)
            )
        if world == 1:
            return RandomSampler(
                dataset, generator=torch.Generator().manual_seed(self.shuffle_seed)
            )
        return StatefulDistributedSampler(
            dataset, world, rank, shuffle=True, seed=self.shuffle_seed
        )

    def last_batch_of_one(self, size: int, batch_size: int) -> bool:
        """Whether a rank's last training batch would hold one image, which BatchNorm cannot
        normalise; then that one image is dropped. Under DDP each rank gets ceil(size / world)."""
        world, _ = self.world_and_rank()
        return math.ceil(size / world) % batch_size == 1

    def train_dataloader(self) -> DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")

"""scikit-learn's handwritten digits: the embedded default dataset (no download, no files)."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits

from convattn.data.in_memory import InMemoryDataModule, Split
from convattn.data.splits import stratified_split
from convattn.errors import ConvattnError

__all__ = ["DigitsDataModule", "stratified_split"]


class DigitsDataModule(InMemoryDataModule):
    """1,797 real 8x8 digits, resized to `img_size`, held in memory as float tensors in [0, 1].

    Split by a fixed, stratified, seeded draw (`split_seed`) into train/val/test. Normalisation
    (training-set mean/std) happens per batch on the device, like the other in-memory sets;
    augmentation is off by default.
    """

    in_chans = 1
    num_classes = 10
    name = "digits"

    def __init__(
        self,
        img_size: int = 32,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        imbalance: float | None = None,
        balanced_sampler: bool = False,
        hflip: bool = False,
        crop_padding: int = 0,
        randaugment: float = 0,
        randaugment_ops: int = 2,
    ) -> None:
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise ConvattnError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be "
                "positive and sum to less than 1."
            )
        super().__init__(
            img_size=img_size,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            split_seed=split_seed,
            imbalance=imbalance,
            balanced_sampler=balanced_sampler,
            hflip=hflip,
            crop_padding=crop_padding,
            randaugment=randaugment,
            randaugment_ops=randaugment_ops,
        )

    def load_splits(self) -> dict[str, Split]:
        digits = load_digits()
        # Kept as float: the 17 grey levels of the 8x8 originals are resized without rounding.
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.as_tensor(digits.target, dtype=torch.long)
        hp = self.hparams
        train, val, test = stratified_split(
            labels, hp.val_fraction, hp.test_fraction, hp.split_seed
        )
        return {
            split: (images[index], labels[index])
            for split, index in (("train", train), ("val", val), ("test", test))
        }

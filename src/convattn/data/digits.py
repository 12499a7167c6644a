"""scikit-learn's handwritten digits: the embedded default dataset (no download, no files)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader

from convattn.data.in_memory import TensorBatchDataset, keep_batch
from convattn.errors import ConvattnError


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


class DigitsDataModule(L.LightningDataModule):
    """1,797 real 8x8 digits, resized to `img_size`, normalised, held in memory as tensors."""

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
    ) -> None:
        super().__init__()
        if not (isinstance(img_size, int) and img_size >= 8):
            raise ConvattnError(f"data.img_size={img_size!r} must be an integer of at least 8.")
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise ConvattnError(
                f"data.val_fraction={val_fraction} and data.test_fraction={test_fraction} must be "
                "positive and sum to less than 1."
            )
        self.save_hyperparameters()
        self.img_size = img_size
        self.batch_size = batch_size
        self.splits: dict[str, TensorBatchDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        digits = load_digits()
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.as_tensor(digits.target, dtype=torch.long)
        images = F.interpolate(images, size=self.img_size, mode="bilinear", align_corners=False)
        hp = self.hparams
        train, val, test = stratified_split(
            labels, hp.val_fraction, hp.test_fraction, hp.split_seed
        )
        # Normalise with training-set statistics only: val/test stay unseen.
        mean, std = images[train].mean(), images[train].std()
        images = (images - mean) / std
        for split, index in (("train", train), ("val", val), ("test", test)):
            self.splits[split] = TensorBatchDataset(images[index], labels[index])

    def class_counts(self) -> torch.Tensor:
        """Number of training images per class."""
        self.setup()
        return torch.bincount(self.splits["train"].labels, minlength=self.num_classes)

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[split], batch_size=batch_size, shuffle=shuffle, collate_fn=keep_batch
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

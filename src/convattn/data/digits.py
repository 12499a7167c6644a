"""scikit-learn's handwritten digits: the embedded default dataset (no download, no files)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from convattn.data.in_memory import InMemoryDataModule, Split
from convattn.data.registry import register_dataset
from convattn.data.splits import stratified_split


@register_dataset("digits")
class DigitsDataModule(InMemoryDataModule):
    """1,797 real 8x8 digits, resized to `img_size`, held in memory as float tensors in [0, 1].

    Split by a fixed, stratified, seeded draw (`split_seed`) into test (`test_fraction`), val
    (`val_fraction`) and train (the rest). Augmentation is off by default.
    """

    in_chans = 1
    num_classes = 10

    def __init__(
        self,
        test_fraction: float = 0.2,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        **options: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, **options)

    def source_files(self) -> list[Path]:
        # Keyed on scikit-learn's data file, found without importing scikit-learn (slow to
        # import): a run that finds its decoded splits in the cache never imports it.
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            return []
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
        return [path] if path.is_file() else []

    def load_splits(self) -> dict[str, Split]:
        from sklearn.datasets import load_digits  # the one module that needs scikit-learn

        digits = load_digits()
        # Kept as float: the 17 grey levels of the 8x8 originals are resized without rounding.
        images = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        labels = torch.as_tensor(digits.target, dtype=torch.long)
        hp = self.hparams
        test, val, train = stratified_split(
            labels, (hp.test_fraction, hp.val_fraction), hp.split_seed
        )
        return {
            split: (images[index], labels[index])
            for split, index in (("train", train), ("val", val), ("test", test))
        }

"""On a long-tailed digits split, rare classes suffer, and the remedies help them."""

from __future__ import annotations

import pytest
import torch

from convattn.records import RunRecord
from convattn.train import train

LONG_TAIL = [
    "data.imbalance=0.02",  # class 9 keeps 2 % of class 0's training images
    "trainer.max_epochs=8",
    "callbacks=none",
    "profile=false",
    "seed=0",
]


def per_class_accuracy(train_cfg, tmp_path, overrides: list[str]) -> torch.Tensor:
    train(train_cfg([*LONG_TAIL, *overrides]))
    return torch.tensor(RunRecord.read(tmp_path).to_dict()["per_class_acc"])


@pytest.mark.slow
@pytest.mark.parametrize("remedy", ["data.balanced_sampler=true", "recipe.class_weights=balanced"])
def test_remedies_lift_rare_classes(train_cfg, tmp_path, remedy: str) -> None:
    plain = per_class_accuracy(train_cfg, tmp_path, [])
    remedied = per_class_accuracy(train_cfg, tmp_path, [remedy])
    frequent, rare = slice(0, 3), slice(7, 10)
    assert plain[rare].mean() < plain[frequent].mean() - 0.1, plain  # the tail suffers
    assert remedied[rare].mean() > plain[rare].mean() + 0.05, (plain, remedied)

"""On a long-tailed digits split, rare classes suffer, and the remedies help them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.runs import compose_config

from convattn.run.record import RunRecord
from convattn.train import train

LONG_TAIL = [
    "data.imbalance=0.02",  # class 9 keeps 2 % of class 0's training images
    "trainer.max_epochs=8",
    "callbacks=none",
    "logger=csv",
    "profile=false",
    "print_config=false",
    "seed=0",
]
FREQUENT, RARE = slice(0, 3), slice(7, 10)


def per_class_accuracy(run_dir: Path, overrides: list[str]) -> torch.Tensor:
    train(compose_config("train", [*LONG_TAIL, *overrides], run_dir))
    return torch.tensor(RunRecord.read(run_dir).to_dict()["per_class_acc"])


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> torch.Tensor:
    """Per-class test accuracy without a remedy: trained once, compared with both remedies."""
    return per_class_accuracy(tmp_path_factory.mktemp("plain"), [])


@pytest.mark.slow
def test_the_tail_suffers_without_a_remedy(plain: torch.Tensor) -> None:
    assert plain[RARE].mean() < plain[FREQUENT].mean() - 0.1, plain


@pytest.mark.slow
@pytest.mark.parametrize("remedy", ["data.balanced_sampler=true", "recipe.class_weights=balanced"])
def test_remedies_lift_rare_classes(plain: torch.Tensor, tmp_path: Path, remedy: str) -> None:
    remedied = per_class_accuracy(tmp_path, [remedy])
    assert remedied[RARE].mean() > plain[RARE].mean() + 0.05, (plain, remedied)

"""The real Fashion-MNIST, as Debian's dataset-fashion-mnist installs it (make test installs it
through scripts/install_debian_packages.sh): its files, its splits and a short real training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.runs import only_run_dir, read_json, run_cli

from convattn.data.torchvision_sets import FashionMNISTDataModule

SYSTEM = Path(FashionMNISTDataModule.system_folders[0])


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> FashionMNISTDataModule:
    assert SYSTEM.is_dir(), (
        f"{SYSTEM} is missing: run scripts/install_debian_packages.sh (apt-get install "
        "dataset-fashion-mnist)"
    )
    return FashionMNISTDataModule(root=tmp_path_factory.mktemp("empty"), img_size=28)


def test_the_debian_files_are_the_official_splits(fashion: FashionMNISTDataModule) -> None:
    assert fashion.folder == SYSTEM  # found without any data.root
    for train, n in ((True, 60_000), (False, 10_000)):
        images, labels = fashion.read_split(train=train)
        assert images.shape == (n, 1, 28, 28) and images.dtype == torch.uint8
        assert torch.bincount(labels).tolist() == [n // 10] * 10
    assert fashion.classes[0] == "T-shirt/top" and fashion.classes[9] == "Ankle boot"


@pytest.mark.slow
def test_short_training_on_a_stratified_fraction(tmp_path: Path) -> None:
    """3 epochs (66 steps) on 5 % of the training images: far above chance on all 10,000 test
    images."""
    run_cli(
        "convattn-train", "data=fashion_mnist", "data.train_fraction=0.05",
        "trainer.max_epochs=3", "logger=csv", "profile=false", "print_config=false",
        "callbacks.attention_maps=null", cwd=tmp_path,
    )  # fmt: skip
    record = read_json(only_run_dir(tmp_path) / "metrics.json")
    assert record["dataset"] == "fashion_mnist" and record["status"] == "completed"
    assert record["train_fraction"] == 0.05 and record["train_images"] == 2_700
    cm = torch.tensor(record["confusion_matrix"])
    assert cm.sum() == 10_000 and cm.sum(1).tolist() == [1_000] * 10
    assert record["metrics"]["test/acc"] > 0.6  # 66 optimizer steps: 0.70 measured; chance 0.1

"""Datasets as Lightning DataModules, all following `convattn.data.base.ClassificationDataModule`.

Each registers itself (`convattn.data.registry`); importing this package imports them all, so
`list_datasets()` names every dataset a config or a run dir may refer to.
"""

from convattn.data import digits, image_folder, torchvision_sets  # noqa: F401  (registers them)
from convattn.data.registry import (
    dataset_targets,
    find_dataset,
    get_dataset,
    list_datasets,
    register_dataset,
)

__all__ = [
    "dataset_targets",
    "find_dataset",
    "get_dataset",
    "list_datasets",
    "register_dataset",
]

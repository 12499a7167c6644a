"""Datasets as Lightning DataModules, all following `convattn.data.base.ClassificationDataModule`.

Importing the package is light, so that `convattn.data.options` (each dataset's option types
and rules) loads without torch. The names below import every data module on first use
(`registry.load_datasets`), so `list_datasets()` names every dataset a config or a run dir may
refer to.
"""

from typing import Any

__all__ = [
    "dataset_targets",
    "find_dataset",
    "get_dataset",
    "list_datasets",
    "register_dataset",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from convattn.data import registry

    registry.load_datasets()
    return getattr(registry, name)

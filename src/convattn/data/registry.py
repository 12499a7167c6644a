"""The registry of data modules: each registers itself under the dataset name it records.

`@register_dataset("cifar10")` on a `ClassificationDataModule` subclass sets its `name` and
makes it selectable: a run dir's data config may name it (`convattn.run.load`), the report
names its jobs by it, and the generic data tests run on it. Its options (types and rules,
no torch) are declared under the same name in `convattn.data.options`. Every lookup here first
imports each module of the package, so the registry is full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from convattn.data.options import list_dataset_options, options_of_dataset
from convattn.utils.config_tree import target_path
from convattn.utils.packages import import_all_modules

if TYPE_CHECKING:
    from convattn.data.base import ClassificationDataModule

    DataModuleT = TypeVar("DataModuleT", bound=type[ClassificationDataModule])
else:
    DataModuleT = TypeVar("DataModuleT")

_DATASETS: dict[str, type[ClassificationDataModule]] = {}


def load_datasets() -> None:
    """Import every module of the package once, so that every data module has registered."""
    import_all_modules("convattn.data")


def register_dataset(name: str) -> Callable[[DataModuleT], DataModuleT]:
    """Class decorator: register a data module under `name` (its recorded `name`)."""

    def wrap(cls: DataModuleT) -> DataModuleT:
        known = _DATASETS.get(name)
        if known is not None and target_path(known) != target_path(cls):
            twice = f"{target_path(known)} and {target_path(cls)}"
            raise ValueError(f"dataset {name!r} is registered twice: {twice}")
        declared = name in list_dataset_options()
        if not declared or target_path(cls) != options_of_dataset(name).TARGET:
            raise ValueError(
                f"dataset {name!r} ({target_path(cls)}) has no options declared under its name "
                "in convattn.data.options (@dataset_options, with TARGET naming this class)"
            )
        cls.name = name
        _DATASETS[name] = cls
        return cls

    return wrap


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    load_datasets()
    return sorted(_DATASETS)


def get_dataset(name: str) -> type[ClassificationDataModule]:
    """The data module registered as `name` (KeyError naming the valid ones otherwise)."""
    load_datasets()
    if name not in _DATASETS:
        raise KeyError(f"no dataset {name!r}; registered: {', '.join(list_datasets())}")
    return _DATASETS[name]


def find_dataset(target: object) -> type[ClassificationDataModule] | None:
    """The registered data module a `_target_` path (or class) names; None if none is.
    Nothing is imported: an unknown path is only compared."""
    if not isinstance(target, (str, type)):
        return None
    load_datasets()
    path = target if isinstance(target, str) else target_path(target)
    return next((cls for cls in _DATASETS.values() if target_path(cls) == path), None)


def dataset_targets() -> dict[str, str]:
    """{`_target_` path: dataset name} of every registered data module."""
    load_datasets()
    return {target_path(cls): name for name, cls in sorted(_DATASETS.items())}

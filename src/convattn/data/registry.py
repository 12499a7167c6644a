"""The registry of data modules: each registers itself under the dataset name it records.

`@register_dataset("cifar10")` on a `ClassificationDataModule` subclass sets its `name` and
makes it selectable: a run dir's data config may name it (`convattn.run.load`), the report
names its jobs by it, and the generic data tests run on it. `import convattn.data` imports
every module of convattn's own, so the registry is full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from convattn.data.base import ClassificationDataModule

    DataModuleT = TypeVar("DataModuleT", bound=type[ClassificationDataModule])
else:
    DataModuleT = TypeVar("DataModuleT")

_DATASETS: dict[str, type[ClassificationDataModule]] = {}


def target_path(cls: type) -> str:
    """The `_target_` that names `cls` in a config: `module.Class`."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_dataset(name: str) -> Callable[[DataModuleT], DataModuleT]:
    """Class decorator: register a data module under `name` (its recorded `name`)."""

    def wrap(cls: DataModuleT) -> DataModuleT:
        known = _DATASETS.get(name)
        if known is not None and target_path(known) != target_path(cls):
            twice = f"{target_path(known)} and {target_path(cls)}"
            raise ValueError(f"dataset {name!r} is registered twice: {twice}")
        cls.name = name
        _DATASETS[name] = cls
        return cls

    return wrap


def list_datasets() -> list[str]:
    """The registered dataset names, sorted."""
    return sorted(_DATASETS)


def get_dataset(name: str) -> type[ClassificationDataModule]:
    """The data module registered as `name` (KeyError naming the valid ones otherwise)."""
    if name not in _DATASETS:
        raise KeyError(f"no dataset {name!r}; registered: {', '.join(list_datasets())}")
    return _DATASETS[name]


def find_dataset(target: object) -> type[ClassificationDataModule] | None:
    """The registered data module a `_target_` path (or class) names; None if none is.
    Nothing is imported: an unknown path is only compared."""
    if not isinstance(target, (str, type)):
        return None
    path = target if isinstance(target, str) else target_path(target)
    return next((cls for cls in _DATASETS.values() if target_path(cls) == path), None)


def dataset_targets() -> dict[str, str]:
    """{`_target_` path: dataset name} of every registered data module."""
    return {target_path(cls): name for name, cls in sorted(_DATASETS.items())}

"""Import every module of a package once: how a registry makes sure all its members registered."""

from __future__ import annotations

import importlib
import pkgutil

_imported: set[str] = set()


def import_all_modules(package: str) -> None:
    """Import each module of `package` (e.g. "convattn.backbones"), once per process. Marked
    before the loop, so a module that looks the registry up while it loads does not restart it."""
    if package in _imported:
        return
    _imported.add(package)
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")

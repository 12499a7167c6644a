"""Import timm without wandb.

`timm.utils.summary` imports wandb whenever it is installed (about 1 s of every run's start-up)
for timm's own train.py summaries, which convattn never calls. `install()` (run once by
`convattn/__init__.py`) puts a finder in front of the import system that loads timm, the first
time anything imports it, with `import wandb` failing; afterwards wandb imports as usual, so a
run pays for it only with `logger=wandb` (`convattn.tracking` imports it then). Nothing is
imported here: `import convattn.report.cli` stays free of torch.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any


class TimmWithoutWandb(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `timm` itself (not its submodules) and runs its `__init__` with wandb hidden."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "timm" or "wandb" in sys.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        self.loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # timm sees its own loader
        sys.modules["wandb"] = None  # type: ignore[assignment]  # `import wandb` raises ImportError
        try:
            self.loader.exec_module(module)
        finally:
            if "wandb" in sys.modules and sys.modules["wandb"] is None:
                del sys.modules["wandb"]


def install() -> None:
    if not any(isinstance(finder, TimmWithoutWandb) for finder in sys.meta_path):
        sys.meta_path.insert(0, TimmWithoutWandb())

"""Callbacks that record what happened inside a real training run, for tests to read back.

Added with `+callbacks.<name>._target_=helpers.probes.<Class>`; each writes a JSON file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ActivationDtypes(Callback):
    """Write the dtypes of the backbone's outputs during training steps to `out`."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.dtypes: set[str] = set()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            self.dtypes.add(str(output.dtype))

        self.handle = pl_module.backbone.register_forward_hook(hook)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.handle.remove()
        self.out.write_text(json.dumps(sorted(self.dtypes)))


class TestedWeights(Callback):
    """Write a checksum of the weights `trainer.test` runs with (per tensor sum) to `out`."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        sums = {k: float(v.double().sum()) for k, v in pl_module.state_dict().items()}
        self.out.write_text(json.dumps(sums))

"""Callbacks that deliver a real signal to the training process at a chosen step.

Tests add them with `+callbacks.<name>._target_=helpers.signals.SignalAtStep`; the subprocess
finds this package through PYTHONPATH.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


class SignalAtStep(Callback):
    """Send `signal_name` to this process once `global_step` reaches `step`."""

    def __init__(self, step: int, signal_name: str = "SIGTERM") -> None:
        self.step = step
        self.signum = getattr(signal, signal_name)

    def on_train_batch_end(self, trainer: Trainer, module: LightningModule, *_: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)

"""Silence library chatter that says nothing about the user's run."""

from __future__ import annotations

import logging
import warnings

NOISY_WARNINGS = (
    r".*ckpt_path=None.*was called without a model.*",  # we pass None on purpose: fresh run dir
    r".*there is no last checkpoint available.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*does not have many workers.*",  # in-memory datasets need no workers
    r".*Trainer already configured with model summary callbacks.*",
    r".*`weights_only` was not set.*",
    r".*set_vital.*is deprecated.*",  # torchdata calls a torch API that torch retired
)


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def quiet_libraries() -> None:
    for pattern in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    drop = _DropMessages("litlogger", "litmodels", "Trainer already configured with model summary")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.trainer.connectors"):
        logging.getLogger(name).addFilter(drop)

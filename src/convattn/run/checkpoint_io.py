"""Checkpoints written whole or not at all: a full disk never leaves a truncated last.ckpt."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from convattn.errors import ConvattnError, find_cause
from convattn.utils.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, but the file is written beside the target, fsync'd and then
    renamed over it, so the previous checkpoint stays intact until the new one is complete."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if "://" in str(path):  # remote filesystems: Lightning's own fsspec path
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write(target, lambda f: torch.save(checkpoint, f))
        except (OSError, RuntimeError) as err:
            cause = os_error_in(err)
            if cause is None:
                raise
            raise ConvattnError(
                f"Could not write the checkpoint {target} ({cause.strerror or cause}): the disk "
                f"may be full or the file too large for this account's limits. The previous "
                f"{target.name}, if any, is intact. Free space in {target.parent} (or point "
                "paths.log_dir elsewhere) and run the same command again to resume."
            ) from None


def os_error_in(err: BaseException | None) -> OSError | None:
    """The OSError behind `err`: torch's zip writer reports a failed write as a RuntimeError
    raised while handling it."""
    return find_cause(err, OSError)

"""Pick a run up where it stopped: its newest checkpoint, its RNG streams, its W&B run.

A job that Slurm requeues, or that a user restarts in the same run dir, finds its own
checkpoint here; no path to type. Lightning restores the weights, optimizer, schedule, loop
counters and the data loader's position; `ImageClassifier` adds the global RNG streams
(augmentation, dropout, mixup), which Lightning leaves out of checkpoints.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger("convattn")

# Written by ModelCheckpoint (last) and OnExceptionCheckpoint (SIGTERM, Slurm's warning signal,
# Ctrl-C, errors). Lightning's own hpc_ckpt_N is never written: convattn.slurm turns its Slurm
# requeue handler off.
RESUME_PATTERNS = ("checkpoints/last.ckpt", "checkpoints/on_exception.ckpt")
WANDB_ID_FILE = "wandb_run_id"


def resume_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint this run dir holds, or None for a fresh run."""
    run_dir = Path(run_dir)
    found = [p for pattern in RESUME_PATTERNS for p in run_dir.glob(pattern)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def wandb_run_id(run_dir: str | Path) -> str:
    """The run dir's W&B run id: made on first use, read back when the run resumes.

    Only rank 0 writes it; other ranks never start a W&B run.
    """
    path = Path(run_dir) / WANDB_ID_FILE
    if path.exists():
        return path.read_text().strip()
    run_id = uuid.uuid4().hex[:8]
    if rank_zero_only.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run_id + "\n")
    return run_id


def restore_loader_position(trainer: L.Trainer) -> None:
    """Apply the data loader position from the checkpoint being resumed (call at train start).

    Works around Lightning #20550: `estimated_stepping_batches` (our LR schedule needs it) builds
    the train loader before the checkpoint is restored, so Lightning never hands the loader its
    saved state and a mid-epoch resume would replay the epoch from a fresh order.
    """
    loop = trainer.fit_loop
    if loop.restarting and loop._combined_loader_states_to_load:
        loop._load_combined_loader_states()
        iter(loop._data_fetcher)  # the iterator made before the restore holds the old position

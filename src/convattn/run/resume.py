"""Pick a run up where it stopped: its most advanced checkpoint, its RNG streams, its loader
position, its W&B run.

A job that Slurm requeues, or that a user restarts in the same run dir, finds its own
checkpoint here; no path to type. Lightning restores the weights, optimizer, schedule and loop
counters; `ResumeState` adds what Lightning leaves out: every rank's RNG streams
(augmentation, dropout, mixup) and the train loader's position inside an epoch.

The two uses of Lightning internals convattn makes live here (and in `cluster/slurm.py`); each
has a test in tests/test_lightning_internals.py that fails loudly if Lightning changes them.
"""

from __future__ import annotations

import logging
import random
import re
import uuid
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, OnExceptionCheckpoint
from lightning.pytorch.utilities import rank_zero_only

from convattn.errors import ConvattnError
from convattn.utils.atomic import atomic_write

log = logging.getLogger("convattn")

CHECKPOINTS = "checkpoints"
IDENTITY_KEY = "convattn_experiment"  # where ResumeState stores the run's identity
# Ties in progress go to the first: last.ckpt is the end of an epoch, written on purpose.
RESUME_NAMES = ("last.ckpt", "on_exception.ckpt", "best.ckpt")
WANDB_ID_FILE = "wandb_run_id"
WANDB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what W&B accepts as a run id
RNG_KEY = "convattn_rng_states"


# ---------------------------------------------------------------- RNG streams, as tensors
def rng_state() -> dict[str, torch.Tensor]:
    """This process's RNG streams as tensors (so a checkpoint loads with weights_only=True):
    torch CPU, this process's CUDA device, numpy and Python's `random`."""
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    _, py_internal, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np_keys.astype(np.int64)),
        "numpy_rest": torch.tensor([np_pos, np_has_gauss, np_gauss], dtype=torch.float64),
        "python_internal": torch.tensor(py_internal, dtype=torch.int64),
        "python_gauss": torch.tensor([py_gauss is not None, py_gauss or 0.0], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the current device only: one per rank
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore what `rng_state` saved."""
    # A clone owns its storage: torch.set_rng_state crashes the process (segfault, torch 2.14)
    # on a view at a storage offset, which is what rank r's slice of a gathered state loads as.
    torch.set_rng_state(state["torch"].clone())
    pos, has_gauss, gauss = state["numpy_rest"].tolist()
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(pos), int(has_gauss), gauss))
    has_py_gauss, py_gauss = state["python_gauss"].tolist()
    internal = tuple(int(v) for v in state["python_internal"].tolist())
    random.setstate((3, internal, py_gauss if has_py_gauss else None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].clone())


def gather_rng_states(trainer: L.Trainer) -> list[dict[str, torch.Tensor]]:
    """Every rank's RNG streams, in rank order (a collective under DDP: all ranks call it)."""
    mine = rng_state()
    if trainer.world_size == 1:
        return [mine]
    gathered = {
        k: trainer.strategy.all_gather(v.to(trainer.strategy.root_device)) for k, v in mine.items()
    }
    return [{k: v[r].cpu().clone() for k, v in gathered.items()} for r in range(trainer.world_size)]


# ---------------------------------------------------------------- the callback
class ResumeState(Callback):
    """Checkpoints every rank's RNG streams and restores this rank's on resume; hands the
    train loader its saved position (see `restore_loader_position`); records the experiment's
    identity (`identity.experiment_identity`) so a restart can check it."""

    def __init__(self, experiment: dict[str, Any] | None = None) -> None:
        self.experiment = experiment

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[RNG_KEY] = gather_rng_states(trainer)
        if self.experiment is not None:
            checkpoint[IDENTITY_KEY] = self.experiment

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        states = checkpoint.get(RNG_KEY)
        if not states:
            return
        if len(states) != trainer.world_size:
            log.warning(
                "The checkpoint holds the RNG streams of %d rank(s) and this run has %d: each "
                "rank keeps its own seeded streams, so augmentation after the resume differs "
                "from an uninterrupted run.",
                len(states),
                trainer.world_size,
            )
            return
        set_rng_state(states[trainer.global_rank])

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        restore_loader_position(trainer)


def restore_loader_position(trainer: L.Trainer) -> None:
    """Apply the data loader position from the checkpoint being resumed (call at train start).

    Works around Lightning #20550: `estimated_stepping_batches` (our LR schedule needs it) builds
    the train loader before the checkpoint is restored, so Lightning never hands the loader its
    saved state and a mid-epoch resume would replay the epoch from a fresh order.
    Lightning internals: `fit_loop._combined_loader_states_to_load`,
    `fit_loop._load_combined_loader_states()`, `fit_loop._data_fetcher`.
    """
    loop = trainer.fit_loop
    if loop.restarting and loop._combined_loader_states_to_load:
        loop._load_combined_loader_states()
        iter(loop._data_fetcher)  # the iterator made before the restore holds the old position


class ProgressCheckpoint(OnExceptionCheckpoint):
    """`OnExceptionCheckpoint` that saves only when this attempt trained at least one step, so
    a restart that fails at start never leaves a checkpoint that looks like the latest state."""

    def __init__(self, dirpath: str, filename: str = "on_exception") -> None:
        super().__init__(dirpath, filename)
        self.start_step: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start_step = trainer.global_step

    def on_exception(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self.start_step is None or trainer.global_step <= self.start_step:
            log.info("No training step in this attempt: no on_exception checkpoint written.")
            return
        try:
            super().on_exception(trainer, *args, **kwargs)
        except ConvattnError as err:  # e.g. the disk is full: the first error is the one to show
            log.error("No on_exception checkpoint: %s", err)


# ---------------------------------------------------------------- which checkpoint to resume
def read_progress(path: Path) -> int:
    """A checkpoint's global step, read without unpickling code (weights_only, memory-mapped)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint["global_step"])
    except Exception as err:  # torch.load raises many types for a broken file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConvattnError(
            f"The checkpoint {path} cannot be read ({type(err).__name__}: {reason[:300]}), so "
            "training cannot start from it. If it is one of a run dir's own checkpoints, move "
            "or delete it to resume from the others, or start a new run dir (drop "
            "hydra.run.dir); as ckpt_path=, pass a .ckpt written by convattn-train."
        ) from None


def resume_checkpoint(run_dir: str | Path, announce: bool = True) -> Path | None:
    """The checkpoint of this run dir with the most training progress (global step; ties go to
    last.ckpt), or None for a fresh run. A checkpoint that cannot be read stops the run."""
    folder = Path(run_dir) / CHECKPOINTS
    found = [folder / name for name in RESUME_NAMES if (folder / name).is_file()]
    if not found:
        return None
    progress = {path: read_progress(path) for path in found}
    best = max(found, key=lambda p: (progress[p], -found.index(p)))
    others = ", ".join(f"{p.name} at step {s}" for p, s in progress.items() if p != best)
    if announce:
        log.info(
            "Resuming from this run's own checkpoint %s (step %d, the most progress%s)",
            best,
            progress[best],
            f"; also found {others}" if others else "",
        )
    return best


def wandb_run_id(run_dir: str | Path) -> str:
    """The run dir's W&B run id: made on first use, read back when the run resumes.

    Written atomically; a file that does not hold an id (emptied by a full disk, edited) is
    replaced by a new id, with a warning: the W&B history then starts a new run.
    Only rank 0 writes it; other ranks never start a W&B run.
    """
    path = Path(run_dir) / WANDB_ID_FILE
    try:
        found = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        found = None
    except OSError as err:
        raise ConvattnError(f"The W&B run id file {path} cannot be read ({err}).") from None
    if found is not None and WANDB_ID.fullmatch(found):
        return found
    if found is not None:
        log.warning("%s holds no W&B run id (%r); logging to a new W&B run.", path, found[:40])
    run_id = uuid.uuid4().hex[:8]
    if rank_zero_only.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: f.write(f"{run_id}\n".encode()))
    return run_id

"""One process per run dir: an exclusive lock, held while a task runs in it.

Two processes training in one dir would each overwrite the other's checkpoints and record,
and both would exit 0. The lock is `flock` on `<run dir>/.lock`, so the kernel releases it
when its holder ends in any way (a killed or preempted job's requeue gets it at once). Other
ranks of the holder's own job (DDP children, `srun` tasks > 0) share its dir and skip it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from convattn.cluster.distributed import is_child_rank
from convattn.cluster.slurm import in_srun_step
from convattn.errors import ConvattnError

LOCK_NAME = ".lock"
_held: dict[Path, int] = {}  # lock file -> open descriptor, for this process


def shares_its_jobs_lock() -> bool:
    """A rank > 0 of a job whose rank 0 holds the lock."""
    srun_rank = os.environ.get("SLURM_PROCID", "0") if in_srun_step() else "0"
    return is_child_rank() or srun_rank != "0"


def acquire(run_dir: str | os.PathLike) -> bool:
    """Take the run dir's lock; False if this process holds it already. ConvattnError, with
    nothing changed, if another process holds it."""
    path = Path(run_dir).resolve() / LOCK_NAME
    if path in _held or shares_its_jobs_lock():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise ConvattnError(
            f"Another process{f' (pid {holder})' if holder.isdigit() else ''} is running in "
            f"the run dir {path.parent}; two runs in one dir would overwrite each other's "
            "checkpoints and record. Nothing was changed. Wait until it ends (it then resumes "
            "from there), or start this run in a new dir (drop hydra.run.dir)."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[path] = fd
    return True


def release(run_dir: str | os.PathLike) -> None:
    fd = _held.pop(Path(run_dir).resolve() / LOCK_NAME, None)
    if fd is not None:
        os.close(fd)  # closing the only descriptor drops the flock


@contextmanager
def run_dir_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the run dir's lock for the block (taken here, or earlier by `RunDirGuard`)."""
    acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir)

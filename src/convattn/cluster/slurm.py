"""Slurm: trust its variables only inside a real `srun` step; turn its warning signal into a
clean stop and a requeue.

Lightning picks `SLURMEnvironment` whenever `SLURM_NTASKS` is set, and takes the world size and
ranks from it. A variable left over in a shell (or copied into a container) would then make a
local run wait forever for ranks that do not exist, so `cluster_environment` decides instead.

Slurm sends a signal some seconds before a time limit or a preemption (`--signal=USR1@90` in
`scripts/slurm_train.sbatch`, USR2 from submitit's `signal_delay_s`; `scancel --signal=USR1` by
hand). Lightning's own requeue handler saves a checkpoint inside the signal handler, in the
middle of whatever step is running; `requeue_on_signal` instead asks Lightning to stop at the end
of the current batch (the same path as SIGTERM: `OnExceptionCheckpoint` writes
`checkpoints/on_exception.ckpt`), then requeues the job. The requeued job runs again in the same
run dir and `convattn.run.resume` picks the checkpoint up.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    LightningEnvironment,
    SLURMEnvironment,
)
from lightning.pytorch.utilities.exceptions import SIGTERMException

from convattn.errors import ConvattnError

log = logging.getLogger("convattn")

REQUEUE_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)


def in_srun_step() -> bool:
    """This process is a task that `srun` started (not the batch script, not a leftover)."""
    return "SLURM_STEP_ID" in os.environ and "SLURM_PROCID" in os.environ


def cluster_environment(devices: Any, num_nodes: int) -> ClusterEnvironment | None:
    """Lightning's Slurm environment only where Slurm really started every rank.

    None leaves the choice to Lightning (no Slurm variables, or an interactive Slurm shell,
    which Lightning already ignores).
    """
    if "SLURM_NTASKS" not in os.environ or SLURMEnvironment.job_name() in ("bash", "interactive"):
        return None
    ntasks = int(os.environ["SLURM_NTASKS"])
    if not in_srun_step():
        log.warning(
            "Ignoring SLURM_NTASKS=%s: this process was not started by srun, so Slurm's variables "
            "are left over from elsewhere. Ranks come from trainer.devices × trainer.num_nodes.",
            ntasks,
        )
        return LightningEnvironment()
    wanted = devices * num_nodes if isinstance(devices, int) and devices > 0 else ntasks
    if ntasks == wanted:
        return SLURMEnvironment(auto_requeue=False)  # requeue_on_signal does it at a batch end
    if ntasks == 1 and num_nodes == 1:
        return LightningEnvironment()  # one Slurm task; Lightning starts the ranks itself
    raise ConvattnError(
        f"Slurm started SLURM_NTASKS={ntasks} tasks, but trainer.devices={devices} × "
        f"trainer.num_nodes={num_nodes} asks for {wanted} processes. Under Slurm each task is "
        "one rank: launch with tasks per node = trainer.devices and nodes = trainer.num_nodes "
        "(hydra/launcher=slurm does this), or with a single task."
    )


def requeue_job() -> None:
    """`scontrol requeue` this job (array tasks by their own id)."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job:
        job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    else:
        job = os.environ["SLURM_JOB_ID"]
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if result.returncode:
        log.error("scontrol requeue %s failed: %s", job, result.stderr.strip())
    else:
        log.warning("Requeued Slurm job %s; it resumes from this run's checkpoint.", job)


@contextmanager
def requeue_on_signal(trainer: L.Trainer) -> Iterator[None]:
    """Inside a Slurm job: on USR1/USR2, stop at the end of the batch, checkpoint, requeue."""
    if "SLURM_JOB_ID" not in os.environ:
        yield
        return
    requested: list[int] = []

    def stop_at_batch_end(signum: int, _frame: Any) -> None:
        requested.append(signum)
        log.warning(
            "Slurm sent %s: stopping after this batch to checkpoint and requeue.",
            signal.Signals(signum).name,
        )
        # Lightning's SIGTERM flag: checked (and broadcast from rank 0 to all ranks) after each
        # batch. Setting it here rather than raising SIGTERM skips Lightning's handler, which
        # would run a collective inside the signal handler.
        trainer._signal_connector.received_sigterm = True

    previous = {sig: signal.signal(sig, stop_at_batch_end) for sig in REQUEUE_SIGNALS}
    try:
        yield
    except SIGTERMException:
        if requested and trainer.is_global_zero:
            requeue_job()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

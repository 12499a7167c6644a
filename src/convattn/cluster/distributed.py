"""DDP that works inside Hydra multiruns: every rank of a job runs that job's saved config.

Lightning starts ranks 1..N-1 by re-running `sys.argv`. Inside `convattn-train -m ...` that argv
is the whole sweep, so rank 1 would re-walk every job (and, under Optuna, train different
hyperparameters from rank 0). Instead rank 0 publishes its job dir in the environment before
`fit`, and a child rank rebuilds its argv to compose exactly that job's `.hydra/config.yaml`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from convattn.utils.atomic import atomic_write

JOB_DIR_ENV = "CONVATTN_JOB_DIR"


def is_child_rank() -> bool:
    """A process Lightning launched for a local rank > 0 of a job started by rank 0."""
    return int(os.environ.get("LOCAL_RANK", "0")) > 0 and JOB_DIR_ENV in os.environ


def child_rank_argv(argv: list[str]) -> list[str]:
    """The argv that makes a child rank compose its job's saved config, or `argv` unchanged."""
    if not is_child_rank():
        return argv
    job_dir = Path(os.environ[JOB_DIR_ENV]).resolve()
    rank = os.environ.get("LOCAL_RANK")
    return [
        argv[0],
        "--config-path",
        str(job_dir / ".hydra"),
        "--config-name",
        "config",
        f'hydra.run.dir="{job_dir}"',
        "hydra.output_subdir=null",  # rank 0 already wrote .hydra/
        f"hydra.job.name=rank_{rank}",  # its own log file: rank_<r>.log
    ]


# What Lightning's launcher writes into the launching process's environment.
LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", JOB_DIR_ENV)


@contextmanager
def job_process_group(output_dir: str) -> Iterator[None]:
    """Scope one job's DDP ranks: they inherit its dir; afterwards nothing of it is left.

    The next job of a multirun must start a fresh process group on a fresh port; Lightning
    leaves the group initialised and its launch variables set, which would pair the next
    job's new ranks with this job's dead ones.
    """
    import torch  # here, so that `child_rank_argv` loads with the light entry points

    saved = {key: os.environ.get(key) for key in LAUNCH_ENV}
    os.environ[JOB_DIR_ENV] = str(Path(output_dir).resolve())
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def write_rank_config(cfg: DictConfig, global_rank: int, world_size: int) -> None:
    """Each rank records the config it actually ran: `ranks/rank<r>.yaml` in the job dir."""
    if world_size < 2:
        return
    path = Path(cfg.paths.output_dir) / "ranks" / f"rank{global_rank}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = OmegaConf.to_yaml(cfg, resolve=True)
    atomic_write(path, lambda f: f.write(text.encode()))

"""Run a task so that it always finishes its loggers and records how it ended."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from convattn.errors import ConvattnError, find_user_error
from convattn.run import lock
from convattn.run.record import RunRecord, metrics_with_prefix
from convattn.run.resume import CHECKPOINTS
from convattn.run.tracking import log_final
from convattn.utils.atomic import remove_stale_temps
from convattn.utils.console import print_summary

log = logging.getLogger("convattn")

Task = Callable[[DictConfig, RunRecord], dict[str, float]]


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def finish_wandb(exit_code: int) -> None:
    """Lightning never calls wandb.finish(); without it the next job in a sweep reuses this run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def write_record(record: RunRecord, output_dir: str) -> None:
    """metrics.json and attempts.jsonl, from rank 0 only."""
    if rank_zero_only.rank == 0:
        record.write(output_dir)


def remove_interrupted_writes(run_dir: str) -> None:
    """Temp files of writes that a killed attempt left (a checkpoint's can be 50 MB). Under
    the run dir's lock no other process writes here, so any age will do."""
    for folder in (Path(run_dir), Path(run_dir) / CHECKPOINTS):
        for path in remove_stale_temps(folder, older_than_s=0):
            log.info("Removed %s, left by an interrupted write.", path)


def finish(record: RunRecord, loggers: list, output_dir: str, start: float) -> dict[str, float]:
    """Mark the run completed, log and write its record, print its summary; its metrics."""
    record.update(status="completed", wall_time_s=time.time() - start)
    log_final(loggers, record)
    write_record(record, output_dir)
    print_summary(
        f"{record.arm} ({record.size}) on {record.dataset}, seed {record.seed}",
        metrics_with_prefix(record.metrics, "test/") or record.metrics,
        {"params": f"{record.params:,}", "wall time": f"{record.wall_time_s:.1f} s",
         "run dir": output_dir},
    )  # fmt: skip
    return record.metrics


def task_wrapper(task: Task) -> Callable[[DictConfig], dict[str, float]]:
    """Wrap a task: time it, finish W&B whatever happens, record failures in metrics.json.

    The task fills in the `RunRecord` it is given as it goes (facts, metrics reached), so a
    failure record keeps what was known. In a multirun a failing job is recorded and the sweep
    goes on; in a single run the error propagates to `run_cli`, which prints it.
    """

    @functools.wraps(task)
    def wrap(cfg: DictConfig) -> dict[str, float]:
        # Before anything is written: a run refused for a busy dir leaves it as it was.
        try:
            lock.acquire(cfg.paths.output_dir)
        except ConvattnError as err:
            if not in_multirun():
                raise
            log.error(f"Job skipped, the sweep goes on: {err}")
            return {}
        try:
            remove_interrupted_writes(cfg.paths.output_dir)
            return run_and_record(cfg)
        finally:
            lock.release(cfg.paths.output_dir)

    def run_and_record(cfg: DictConfig) -> dict[str, float]:
        start = time.time()
        record = RunRecord(
            task=cfg.task_name,
            seed=cfg.get("seed"),
            arm=(cfg.get("model") or {}).get("arm"),
            output_dir=str(cfg.paths.output_dir),
        )
        exit_code = 1
        try:
            metrics = task(cfg, record)
            exit_code = 0
            return metrics
        except BaseException as err:
            # Lightning turns Ctrl-C into SystemExit after its graceful shutdown.
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
            record.update(
                status="interrupted" if interrupted else "failed",
                error=f"{type(err).__name__}: {err}",
                wall_time_s=time.time() - start,
            )
            write_record(record, cfg.paths.output_dir)
            if in_multirun() and not interrupted:
                report = log.error if find_user_error(err) else log.exception
                report(f"Job failed, the sweep goes on ({cfg.paths.output_dir}): {err}")
                return {}
            if isinstance(err, SIGTERMException):  # a bare SystemExit would exit 0: "done"
                log.warning(f"Stopped by SIGTERM; run again in {cfg.paths.output_dir} to resume.")
                raise SystemExit(128 + signal.SIGTERM) from err
            raise
        finally:
            finish_wandb(exit_code)

    return wrap


def run_cli(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> float | None:
    """Run a task from a Hydra main; a user mistake becomes one paragraph and exit status 2."""
    try:
        metrics = task(cfg)
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        log.error(str(user_error))
        sys.exit(2)
    name = cfg.get("optimized_metric")
    if name and name in metrics:
        return float(metrics[name])
    return float("nan") if name else None

"""Run a task so that it always finishes its loggers and records how it ended."""

from __future__ import annotations

import functools
import logging
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from convattn.errors import find_user_error
from convattn.utils.run_record import write_record

log = logging.getLogger("convattn")


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def finish_wandb(exit_code: int) -> None:
    """Lightning never calls wandb.finish(); without it the next job in a sweep reuses this run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def task_wrapper(
    task: Callable[[DictConfig], dict[str, Any]],
) -> Callable[[DictConfig], dict[str, Any]]:
    """Wrap a task: time it, finish W&B whatever happens, record failures in metrics.json.

    In a multirun a failing job is recorded and the sweep goes on; in a single run the error
    propagates to `run_cli`, which prints it.
    """

    @functools.wraps(task)
    def wrap(cfg: DictConfig) -> dict[str, Any]:
        start = time.time()
        exit_code = 1
        try:
            metrics = task(cfg)
            exit_code = 0
            return metrics
        except BaseException as err:
            # Lightning turns Ctrl-C into SystemExit after its graceful shutdown.
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
            status = "interrupted" if interrupted else "failed"
            write_record(
                cfg.paths.output_dir,
                {
                    "status": status,
                    "error": f"{type(err).__name__}: {err}",
                    "task": cfg.task_name,
                    "seed": cfg.get("seed"),
                    "arm": cfg.get("model", {}).get("arm"),
                    "wall_time_s": time.time() - start,
                },
            )
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

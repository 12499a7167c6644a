"""The Hydra callbacks that run before a single run or a sweep writes anything: the config
first (`ConfigCheck`, no torch), then the run or sweep dir it names. Each refusal is one
paragraph on stderr and exit status 2; the dir is left as it was.

They are named in `conf/hydra/default.yaml`, in the order they run. Hydra builds them all at
start-up, so this module stays light: the dir guards import what they need when they run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from hydra.experimental.callback import Callback as HydraCallback
from omegaconf import DictConfig

from convattn.config.check import check_config
from convattn.errors import ConvattnError

log = logging.getLogger("convattn")

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def refuse_mistakes(check: Callable[[], None]) -> None:
    """Run `check`; a user mistake becomes one paragraph on stderr and exit status 2."""
    try:
        check()
    except ConvattnError as err:
        logging.basicConfig(format="%(message)s")
        log.error(str(err))
        sys.exit(2)


def grid_jobs(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, in the order Hydra's basic sweeper numbers the jobs."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def check_sweep_configs(config: DictConfig) -> None:
    """Every job of a grid sweep, composed and checked before the first starts; a sweeper that
    picks its jobs as it goes (Optuna, W&B) has its base config checked, each job by `train()`."""
    if config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
        check_config(config)
        return
    from hydra import compose

    launch = list(config.hydra.overrides.hydra)  # the launcher's settings (Slurm's GPUs)
    for num, overrides in enumerate(grid_jobs(config)):
        job = compose(config.hydra.job.config_name, [*launch, *overrides], return_hydra_config=True)
        try:
            check_config(job)
        except ConvattnError as err:
            raise ConvattnError(
                f"Job {num} of this sweep ({' '.join(overrides)}): {err} No job was started."
            ) from None


class ConfigCheck(HydraCallback):
    """Before anything else: the config of a run, or of every job of a grid sweep."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_mistakes(lambda: check_config(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_mistakes(lambda: check_sweep_configs(config))


class RunDirGuard(HydraCallback):
    """Before Hydra writes a single run's `.hydra/`, check that its dir can be written and, if
    it holds checkpoints, that they are of this same experiment; then take its lock."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from convattn.run.identity import guard_run_dir

        refuse_mistakes(lambda: guard_run_dir(config))


class SweepDirGuard(HydraCallback):
    """Before a multirun starts, check a reused sweep dir job by job."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "model" not in config:
            return
        from convattn.run.identity import check_sweep_dir

        refuse_mistakes(lambda: check_sweep_dir(config, grid_jobs(config)))

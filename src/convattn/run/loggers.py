"""Build callbacks and loggers from their config groups (lightning-hydra-template style)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from convattn.run.lifecycle import in_multirun
from convattn.run.resume import wandb_run_id
from convattn.utils.wandb_mode import wandb_should_be_offline

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """One callback per `_target_` entry of the `callbacks` group."""
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def sweep_name(task_name: str) -> str:
    """`<task_name>-<sweep dir name>`: the same for every job of one multirun."""
    return f"{task_name}-{Path(HydraConfig.get().sweep.dir).name}"


def wandb_kwargs(conf: DictConfig, facts: dict[str, Any] | None) -> dict[str, Any]:
    """Offline mode, the run dir's run id, and with a run's `facts` its group, job type, tags
    and name."""
    kwargs: dict[str, Any] = {}
    if not conf.get("offline") and wandb_should_be_offline():
        log.info("No W&B API key found: logging to W&B offline under the run dir.")
        kwargs["offline"] = True
    if conf.get("id") is None:
        kwargs["id"] = wandb_run_id(conf.save_dir)
    if not facts:
        return kwargs
    arm, size, dataset = facts["arm"], facts["size"], facts["dataset"]
    kwargs["job_type"] = conf.get("job_type") or arm
    kwargs["tags"] = sorted({*(conf.get("tags") or []), arm, str(size), dataset})
    kwargs["name"] = conf.get("name") or f"{arm}-{size}-{dataset}-s{facts['seed']}"
    if conf.get("group") is None and in_multirun():
        kwargs["group"] = sweep_name(facts["task"])
    return kwargs


def instantiate_loggers(
    cfg: DictConfig | None, facts: dict[str, Any] | None = None
) -> list[Logger]:
    """One logger per `_target_` entry; `facts` (arm, size, dataset, seed) label the W&B run."""
    loggers: list[Logger] = []
    for name, conf in (cfg or {}).items():
        if not (isinstance(conf, DictConfig) and "_target_" in conf):
            continue
        extra = wandb_kwargs(conf, facts) if name == "wandb" else {}
        loggers.append(instantiate(conf, **extra))
    return loggers

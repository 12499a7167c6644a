"""Build callbacks and loggers from their config groups (lightning-hydra-template style)."""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from lightning.pytorch import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from convattn.utils.wandb_mode import wandb_should_be_offline

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """One callback per `_target_` entry of the `callbacks` group."""
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    """One logger per `_target_` entry; W&B goes offline when no credentials are found."""
    loggers: list[Logger] = []
    for name, conf in (cfg or {}).items():
        if not (isinstance(conf, DictConfig) and "_target_" in conf):
            continue
        kwargs = {}
        if name == "wandb" and not conf.get("offline") and wandb_should_be_offline():
            log.info("No W&B API key found: logging to W&B offline under the run dir.")
            kwargs["offline"] = True
        loggers.append(instantiate(conf, **kwargs))
    return loggers

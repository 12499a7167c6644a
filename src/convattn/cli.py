"""The console entry points `convattn-train` and `convattn-eval`, light by design.

Hydra composes the config and `convattn.config.guards.ConfigCheck` checks it (every job of a
grid sweep), `--help` and `--cfg` print, all before torch, Lightning, timm or wandb load: a
mistake on the command line is answered at the speed of Hydra. The task modules
(`convattn.train`, `convattn.eval`) load only once the config has passed.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from convattn.cluster.distributed import child_rank_argv
from convattn.config.hints import hydra_entry
from convattn.config.location import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def train_job(cfg: DictConfig) -> float | None:
    from convattn.train import run  # the heavy stack, for a config that passed its checks

    return run(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def eval_job(cfg: DictConfig) -> float | None:
    from convattn.eval import run

    return run(cfg)


def train() -> None:
    """`convattn-train`; a DDP child rank re-composes its job's saved config instead."""
    sys.argv = child_rank_argv(sys.argv)
    hydra_entry(train_job, "train")


def evaluate() -> None:
    """`convattn-eval`: config mistakes exit 2 with "did you mean" hints."""
    hydra_entry(eval_job, "eval")

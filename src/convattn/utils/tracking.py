"""What every run sends to its loggers beyond the metrics Lightning logs itself."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def run_facts(cfg: DictConfig, model: L.LightningModule, datamodule: Any) -> dict[str, Any]:
    """The key facts of a run, for metrics.json and the loggers."""
    return {
        "task": cfg.task_name,
        "arm": cfg.model.arm,
        "size": cfg.model.get("size"),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "dataset": getattr(datamodule, "name", type(datamodule).__name__),
        "img_size": datamodule.img_size,
        "in_chans": datamodule.in_chans,
        "num_classes": datamodule.num_classes,
        "seed": cfg.seed,
        "params": count_params(model.backbone),
        "trainable_params": count_params(model.backbone, trainable_only=True),
        "output_dir": cfg.paths.output_dir,
    }


def log_run_facts(
    cfg: DictConfig, model: L.LightningModule, datamodule: Any, loggers: list[Logger]
) -> dict[str, Any]:
    """Log the resolved config and the run's facts to every logger; return the facts."""
    facts = run_facts(cfg, model, datamodule)
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams({"config": config, "facts": facts})
    wandb_run = wandb_experiment(loggers)
    if wandb_run is not None:
        wandb_run.summary["params"] = facts["params"]
        facts["wandb_run_id"] = wandb_run.id
        facts["wandb_dir"] = wandb_run.dir
    return facts


def wandb_experiment(loggers: list[Logger]) -> Any | None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def log_confusion_matrix(loggers: list[Logger], matrix: torch.Tensor) -> None:
    """The test confusion matrix as W&B's own confusion-matrix chart."""
    run = wandb_experiment(loggers)
    if run is None:
        return
    import wandb

    # wandb.plot wants one (true, predicted) pair per sample: expand the counts back.
    n = matrix.shape[0]
    true = torch.arange(n).repeat_interleave(n)
    pred = torch.arange(n).repeat(n)
    counts = matrix.flatten()
    chart = wandb.plot.confusion_matrix(
        y_true=true.repeat_interleave(counts).tolist(),
        preds=pred.repeat_interleave(counts).tolist(),
        class_names=[str(i) for i in range(n)],
        title="test confusion matrix",
    )
    run.log({"test/confusion_matrix": chart})

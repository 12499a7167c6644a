"""What every run records beyond the metrics Lightning logs itself: facts, cost, config."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from convattn.backbones.profile import (
    count_flops,
    count_params,
    measure_latency,
    measure_throughput,
)
from convattn.data.base import ClassificationDataModule
from convattn.run.record import RunRecord


def run_facts(
    cfg: DictConfig, model: L.LightningModule, datamodule: ClassificationDataModule
) -> dict[str, Any]:
    """The key facts of a run, for metrics.json, run names and tags."""
    return {
        "task": cfg.task_name,
        "arm": cfg.model.arm,
        "size": cfg.model.get("size"),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "dataset": datamodule.name,
        "img_size": datamodule.img_size,
        "in_chans": datamodule.in_chans,
        "num_classes": datamodule.num_classes,
        "train_fraction": datamodule.hparams.train_fraction,
        "seed": cfg.seed,
        "params": count_params(model.backbone),
        "trainable_params": count_params(model.backbone, trainable_only=True),
        "output_dir": cfg.paths.output_dir,
    }


def profile_backbone(
    backbone: torch.nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> dict[str, float]:
    """Cost on this process's CPU threads: GFLOPs per image, training images/s, latency."""
    return {
        "gflops": count_flops(backbone, (1, *input_shape)) / 1e9,
        "train_images_per_s": measure_throughput(backbone, (batch_size, *input_shape), num_classes),
        "latency_ms_b1": measure_latency(backbone, (1, *input_shape)),
        "threads": torch.get_num_threads(),
    }


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: one filterable W&B column per config value."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


@rank_zero_only
def log_run_facts(cfg: DictConfig, facts: dict[str, Any], loggers: list[Logger]) -> None:
    """The resolved config and the run's facts to every logger; W&B also gets them flat."""
    config = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.config.update(
                {"facts": facts, **flatten(config)}, allow_val_change=True
            )
        else:
            logger.log_hyperparams({"config": config, "facts": facts})
    run = wandb_experiment(loggers)
    if run is not None:
        run.summary.update(
            {
                "params": facts["params"],
                **{f"profile/{k}": v for k, v in facts.get("profile", {}).items()},
            }
        )
        facts["wandb_run_id"] = run.id


@rank_zero_only
def log_final(loggers: list[Logger], record: RunRecord) -> None:
    """Final numbers that are not per-step metrics: wall time, and the confusion matrix."""
    run = wandb_experiment(loggers)
    if run is None:
        return
    run.summary["wall_time_s"] = record.wall_time_s
    if record.confusion_matrix is not None:
        log_confusion_matrix(run, torch.as_tensor(record.confusion_matrix))


def wandb_experiment(loggers: list[Logger]) -> Any | None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            return logger.experiment
    return None


def log_confusion_matrix(run: Any, matrix: torch.Tensor) -> None:
    """The test confusion matrix as W&B's own confusion-matrix chart."""
    import wandb

    # wandb.plot wants one (true, predicted) pair per sample: expand the counts back.
    n = matrix.shape[0]
    counts = matrix.flatten()
    true = torch.arange(n).repeat_interleave(n).repeat_interleave(counts)
    pred = torch.arange(n).repeat(n).repeat_interleave(counts)
    chart = wandb.plot.confusion_matrix(
        y_true=true.tolist(),
        preds=pred.tolist(),
        class_names=[str(i) for i in range(n)],
        title="test confusion matrix",
    )
    run.log({"test/confusion_matrix": chart})

"""What every run records beyond the metrics Lightning logs itself: facts, cost, progress."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from convattn.backbones.profile import (
    count_flops,
    count_params,
    measure_latency,
    measure_throughput,
)
from convattn.data.base import ClassificationDataModule, per_device_batch_size
from convattn.run.record import RunRecord, metrics_with_prefix
from convattn.utils.config_tree import flatten


def run_facts(
    classifier: L.LightningModule, datamodule: ClassificationDataModule, **known: Any
) -> dict[str, Any]:
    """The key facts of a run, for metrics.json, run names and tags: `known` (task, arm, size,
    seed, model config, output dir), the data's shape, and the backbone's parameters."""
    return {
        **known,
        "dataset": datamodule.name,
        "img_size": datamodule.img_size,
        "in_chans": datamodule.in_chans,
        "num_classes": datamodule.num_classes,
        "train_fraction": datamodule.hparams.train_fraction,
        "params": count_params(classifier.backbone),
        "trainable_params": count_params(classifier.backbone, trainable_only=True),
    }


def profile_backbone(
    backbone: torch.nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int
) -> dict[str, float]:
    """Cost on this process's CPU threads: GFLOPs per image, training images/s, latency.

    Under `fork_rng`, so profiling draws nothing from the run's random streams: a run gives
    the same result with `profile=false`.
    """
    with torch.random.fork_rng(devices=[]):
        return {
            "gflops": count_flops(backbone, (1, *input_shape)) / 1e9,
            "train_images_per_s": measure_throughput(
                backbone, (batch_size, *input_shape), num_classes
            ),
            "latency_ms_b1": measure_latency(backbone, (1, *input_shape)),
            "threads": torch.get_num_threads(),
        }


class RunRecorder(L.Callback):
    """Fills the run's `RunRecord` as Lightning runs it.

    Facts go in at once, so even a failure record has them. At setup: the cost profile (rank
    0, if asked) and the config and facts to every logger. At the end of fit, or on a failure
    or Ctrl-C: how far fit got. At the end of a test: the test metrics.
    """

    def __init__(
        self, record: RunRecord, facts: dict[str, Any], config: dict[str, Any], profile: bool
    ) -> None:
        self.record, self.facts, self.config, self.profile = record, facts, config, profile
        self.start = time.time()
        self.logged = False
        record.update(**facts)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.logged:  # fit then test: once
            return
        self.logged = True
        if self.profile and trainer.is_global_zero:
            dm = trainer.datamodule
            batch = per_device_batch_size(dm.batch_size, trainer.world_size)
            self.record.profile = profile_backbone(
                pl_module.backbone, pl_module.input_shape, dm.num_classes, batch
            )
            self.facts["profile"] = self.record.profile
        log_run_facts(self.config, self.facts, trainer.loggers)
        self.record.wandb_run_id = self.facts.get("wandb_run_id")

    def record_progress(self, trainer: L.Trainer) -> None:
        dm = trainer.datamodule
        self.record.update(
            metrics=metrics_with_prefix(trainer.callback_metrics, "val/"),
            epochs=trainer.current_epoch,
            global_step=trainer.global_step,
            train_images=dm.train_size() if dm is not None and dm.datasets else None,
            train_time_s=time.time() - self.start,
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record_progress(trainer)
        callback = trainer.checkpoint_callback
        self.record.best_ckpt = (callback.best_model_path if callback else "") or None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, err: BaseException
    ) -> None:
        if trainer.state.fn == "fit":
            self.record_progress(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record.metrics |= metrics_with_prefix(trainer.callback_metrics, "test/")
        self.record.update(
            confusion_matrix=pl_module.confusion_matrix, per_class_acc=pl_module.per_class_accuracy
        )


@rank_zero_only
def log_run_facts(config: dict[str, Any], facts: dict[str, Any], loggers: list[Logger]) -> None:
    """The resolved config and the run's facts to every logger; W&B also gets them flat."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.config.update(
                {"facts": facts, **flatten(config, keep_empty=True)}, allow_val_change=True
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

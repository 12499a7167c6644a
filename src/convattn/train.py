"""`convattn-train`: fit a classifier, then test its best checkpoint."""

from __future__ import annotations

import logging
import sys
import time

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from convattn.classifier import ImageClassifier
from convattn.cluster.distributed import child_rank_argv, job_process_group, write_rank_config
from convattn.cluster.hardware import check_compile_with_sync_batchnorm, use_tensor_cores
from convattn.cluster.seeding import RankSeed
from convattn.cluster.slurm import cluster_environment, requeue_on_signal
from convattn.config_dir import CONFIG_DIR
from convattn.config_errors import hydra_entry
from convattn.data.base import ClassificationDataModule, per_device_batch_size
from convattn.errors import ConvattnError, instantiate_checked
from convattn.run.checkpoint_io import AtomicCheckpointIO
from convattn.run.identity import (
    check_resume_mode,
    check_same_experiment,
    experiment_identity,
)
from convattn.run.lifecycle import run_cli, task_wrapper, write_record
from convattn.run.load import resolve_checkpoint
from convattn.run.loggers import instantiate_callbacks, instantiate_loggers
from convattn.run.record import RunRecord, metrics_with_prefix
from convattn.run.resume import ResumeState, read_progress, resume_checkpoint
from convattn.run.tracking import log_final, log_run_facts, profile_backbone, run_facts
from convattn.utils.console import print_config, print_summary
from convattn.utils.quiet import quiet_libraries

log = logging.getLogger("convattn")


def class_weights(
    setting: str | list[float] | None, datamodule: ClassificationDataModule
) -> list[float] | None:
    """`recipe.class_weights` as numbers: "balanced" is inverse class frequency."""
    if setting != "balanced":
        return setting
    counts = datamodule.class_counts().double().clamp(min=1)
    return (counts.sum() / (len(counts) * counts)).tolist()


def build_classifier(cfg: DictConfig, datamodule: ClassificationDataModule) -> ImageClassifier:
    """The classifier for `cfg.model` on the data's shape; fails here on a mismatch."""
    recipe = OmegaConf.to_container(cfg.recipe, resolve=True)
    recipe["class_weights"] = class_weights(recipe.get("class_weights"), datamodule)
    return ImageClassifier(
        backbone=OmegaConf.to_container(cfg.model, resolve=True),
        in_chans=datamodule.in_chans,
        num_classes=datamodule.num_classes,
        img_size=datamodule.img_size,
        class_names=datamodule.classes,
        **recipe,
    )


def fit_checkpoint(cfg: DictConfig) -> str | None:
    """`ckpt_path` if given (checked readable), else the run dir's own most advanced
    checkpoint if it was trained as this same experiment (a requeued or restarted run), else
    None: a fresh start."""
    if cfg.get("ckpt_path"):
        path, _ = resolve_checkpoint(cfg.ckpt_path, "ckpt_path")
        read_progress(path)  # a truncated or foreign file: one paragraph, before training
        return str(path)
    found = resume_checkpoint(cfg.paths.output_dir)
    if found is not None:
        check_same_experiment(cfg, found)
    return str(found) if found else None


def load_tested_weights(model: ImageClassifier, ckpt: str | None) -> None:
    """Put the best checkpoint's `state_dict` into `model` (weights only, no callbacks).

    Not `trainer.test(ckpt_path=...)`: after fit, Lightning's EMA callback answers that load by
    restoring the raw weights, so the test would silently score the non-averaged model.
    """
    if ckpt:
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(checkpoint["state_dict"])


def check_budget(trainer_cfg: DictConfig) -> None:
    """An endless run is a mistake on a shared cluster: max_epochs=-1 needs max_steps."""
    epochs, steps = trainer_cfg.get("max_epochs"), trainer_cfg.get("max_steps", -1)
    if epochs is not None and epochs < 1 and (steps is None or steps < 1):
        raise ConvattnError(
            f"trainer.max_epochs={epochs} with trainer.max_steps={steps} would train forever; "
            "set trainer.max_epochs to 1 or more, or set trainer.max_steps (e.g. "
            "trainer.max_epochs=-1 trainer.max_steps=5000)."
        )


def check_config(cfg: DictConfig) -> None:
    """Mistakes that the config alone shows, before anything is built."""
    check_budget(cfg.trainer)
    check_resume_mode(cfg)
    check_compile_with_sync_batchnorm(cfg)


def build_trainer(
    cfg: DictConfig, model: ImageClassifier, datamodule: ClassificationDataModule, record: RunRecord
) -> tuple[L.Trainer, list]:
    """The trainer with its callbacks, loggers and cluster plugins; the run's facts (params,
    FLOPs, throughput) recorded and logged."""
    facts = run_facts(cfg, model, datamodule)
    record.update(**facts)
    loggers = instantiate_loggers(cfg.get("logger"), facts)
    environment = cluster_environment(cfg.trainer.get("devices"), cfg.trainer.get("num_nodes", 1))
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), RankSeed(cfg.seed),
                 ResumeState(experiment_identity(cfg))]  # fmt: skip
    plugins = [AtomicCheckpointIO(), *([environment] if environment else [])]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                     plugins=plugins)  # fmt: skip
    # Lightning guessed the rank at import from RANK / SLURM_PROCID; the trainer knows it.
    rank_zero_only.rank = trainer.global_rank
    use_tensor_cores(trainer)
    if cfg.get("profile") and trainer.is_global_zero:
        batch = per_device_batch_size(datamodule.batch_size, trainer.world_size)
        record.profile = profile_backbone(
            model.backbone, model.input_shape, datamodule.num_classes, batch
        )
        facts["profile"] = record.profile
    log_run_facts(cfg, facts, loggers)
    record.wandb_run_id = facts.get("wandb_run_id")
    write_rank_config(cfg, trainer.global_rank, trainer.world_size)
    return trainer, loggers


def record_progress(record: RunRecord, trainer: L.Trainer, datamodule) -> None:
    """What fit reached, also for a failure record."""
    record.update(
        metrics=metrics_with_prefix(trainer.callback_metrics, "val/"),
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        train_images=datamodule.train_size() if datamodule.datasets else None,
    )


def test_best(trainer: L.Trainer, model: ImageClassifier, datamodule, record: RunRecord) -> None:
    """Score the best checkpoint's weights on the test split, into the record."""
    load_tested_weights(model, record.best_ckpt)
    trainer.test(model, datamodule, verbose=False)
    record.metrics |= metrics_with_prefix(trainer.callback_metrics, "test/")
    record.update(confusion_matrix=model.confusion_matrix, per_class_acc=model.per_class_accuracy)


def finish(record: RunRecord, loggers: list, output_dir: str, start: float) -> None:
    """Mark the run completed, log and write its record, print its summary."""
    record.update(status="completed", wall_time_s=time.time() - start)
    log_final(loggers, record)
    write_record(record, output_dir)
    print_summary(
        f"{record.arm} ({record.size}) on {record.dataset}, seed {record.seed}",
        metrics_with_prefix(record.metrics, "test/") or record.metrics,
        {"params": f"{record.params:,}", "wall time": f"{record.wall_time_s:.1f} s",
         "run dir": output_dir},
    )  # fmt: skip


@task_wrapper
def train(cfg: DictConfig, record: RunRecord) -> dict[str, float]:
    """Build data, model and trainer; fit; test the best checkpoint; record."""
    start = time.time()
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule: ClassificationDataModule = instantiate_checked(cfg.data)
    model = build_classifier(cfg, datamodule)  # before any data is loaded: config errors first
    ckpt_path = fit_checkpoint(cfg) if cfg.get("train") else None
    trainer, loggers = build_trainer(cfg, model, datamodule, record)
    with job_process_group(cfg.paths.output_dir):  # DDP ranks started by fit() run this job
        try:
            if cfg.get("train"):
                with requeue_on_signal(trainer):
                    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path,
                                weights_only=True)  # fmt: skip
        finally:
            record_progress(record, trainer, datamodule)
        record.train_time_s = time.time() - start
        callback = trainer.checkpoint_callback
        record.best_ckpt = (callback.best_model_path if callback else "") or None
        if cfg.get("test"):
            test_best(trainer, model, datamodule, record)
    finish(record, loggers, cfg.paths.output_dir, start)
    return record.metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    if cfg.get("print_config"):
        print_config(cfg)
    return run_cli(train, cfg)


def main() -> None:
    """Console entry point; a DDP child rank re-composes its job's saved config instead."""
    sys.argv = child_rank_argv(sys.argv)
    hydra_entry(hydra_main, "train")


if __name__ == "__main__":
    main()

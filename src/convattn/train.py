"""`convattn-train`: fit a classifier, then test its best checkpoint."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from convattn.classifier import ImageClassifier
from convattn.config_dir import CONFIG_DIR
from convattn.distributed import (
    child_rank_argv,
    job_process_group,
    per_device_batch_size,
    write_rank_config,
)
from convattn.errors import instantiate_checked
from convattn.resume import resume_checkpoint
from convattn.slurm import cluster_environment, requeue_on_signal
from convattn.utils.console import print_config, print_summary
from convattn.utils.instantiate import instantiate_callbacks, instantiate_loggers
from convattn.utils.quiet import quiet_libraries
from convattn.utils.run_record import write_record
from convattn.utils.task import run_cli, task_wrapper
from convattn.utils.tracking import log_final, log_run_facts, profile_backbone, run_facts

log = logging.getLogger("convattn")


def build_classifier(cfg: DictConfig, datamodule: L.LightningDataModule) -> ImageClassifier:
    """The classifier for `cfg.model` on the data's shape; fails here on a mismatch."""
    recipe = OmegaConf.to_container(cfg.recipe, resolve=True)
    return ImageClassifier(
        backbone=OmegaConf.to_container(cfg.model, resolve=True),
        in_chans=datamodule.in_chans,
        num_classes=datamodule.num_classes,
        img_size=datamodule.img_size,
        **recipe,
    )


def test_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint if one was saved (fast_dev_run saves none)."""
    callback = trainer.checkpoint_callback
    return getattr(callback, "best_model_path", None) or None


def fit_checkpoint(cfg: DictConfig) -> str | None:
    """`ckpt_path` if given, else the run dir's own newest checkpoint (a requeued or restarted
    run), else None: a fresh start."""
    if cfg.get("ckpt_path"):
        return cfg.ckpt_path
    found = resume_checkpoint(cfg.paths.output_dir)
    if found is None:
        return None
    log.info("Resuming from this run's own checkpoint %s", found)
    return str(found)


@task_wrapper
def train(cfg: DictConfig) -> dict[str, Any]:
    start = time.time()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate_checked(cfg.data)
    model = build_classifier(cfg, datamodule)  # before any data is loaded: config errors first
    facts = run_facts(cfg, model, datamodule)
    loggers = instantiate_loggers(cfg.get("logger"), facts)
    environment = cluster_environment(cfg.trainer.get("devices"), cfg.trainer.get("num_nodes", 1))
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_callbacks(cfg.get("callbacks")),
        logger=loggers,
        plugins=[environment] if environment else None,
    )
    # Lightning guessed the rank at import from RANK / SLURM_PROCID; the trainer knows it.
    rank_zero_only.rank = trainer.global_rank
    datamodule.batch_size = per_device_batch_size(datamodule.batch_size, trainer.world_size)
    if cfg.get("profile") and trainer.is_global_zero:
        facts["profile"] = profile_backbone(
            model.backbone, model.input_shape, datamodule.num_classes, datamodule.batch_size
        )
    log_run_facts(cfg, facts, loggers)
    write_rank_config(cfg, trainer.global_rank, trainer.world_size)

    with job_process_group(cfg.paths.output_dir):  # DDP ranks started by fit() run this job
        if cfg.get("train"):
            with requeue_on_signal(trainer):
                trainer.fit(
                    model, datamodule=datamodule, ckpt_path=fit_checkpoint(cfg), weights_only=False
                )
        train_time = time.time() - start
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        best_ckpt = test_checkpoint(trainer)
        if cfg.get("test"):
            trainer.test(model, datamodule, ckpt_path=best_ckpt, verbose=False, weights_only=False)
            metrics |= {
                k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
            }

    record = {
        "status": "completed",
        **facts,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "best_ckpt": best_ckpt,
        "train_time_s": train_time,
        "wall_time_s": time.time() - start,
        "metrics": metrics,
        "confusion_matrix": getattr(model, "confusion_matrix", None),
        "per_class_acc": getattr(model, "per_class_accuracy", None),
    }
    log_final(loggers, record)
    write_record(cfg.paths.output_dir, record)
    shown = {k: v for k, v in metrics.items() if k.startswith("test/")} or metrics
    print_summary(
        f"{facts['arm']} ({facts['size']}) on {facts['dataset']}, seed {facts['seed']}",
        shown,
        {
            "params": f"{facts['params']:,}",
            "wall time": f"{record['wall_time_s']:.1f} s",
            "run dir": cfg.paths.output_dir,
        },
    )
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    if cfg.get("print_config"):
        print_config(cfg)
    return run_cli(train, cfg)


def main() -> float | None:
    """Console entry point; a DDP child rank re-composes its job's saved config instead."""
    sys.argv = child_rank_argv(sys.argv)
    return hydra_main()


if __name__ == "__main__":
    main()

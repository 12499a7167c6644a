"""`convattn-eval`: test a trained checkpoint on the data config's test (or val) split."""

from __future__ import annotations

import time

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from convattn.cluster.seeding import seed_everything
from convattn.config.check import check_config
from convattn.errors import ConvattnError, check_choice, instantiate_checked
from convattn.run.lifecycle import run_cli, task_wrapper, write_record
from convattn.run.load import check_data_matches, load_classifier, resolve_checkpoint
from convattn.run.loggers import instantiate_loggers
from convattn.run.record import RunRecord, metrics_with_prefix
from convattn.utils.console import print_config, print_summary
from convattn.utils.quiet import quiet_libraries


@task_wrapper
def evaluate(cfg: DictConfig, record: RunRecord) -> dict[str, float]:
    start = time.time()
    check_config(cfg)
    seed_everything(cfg.seed)
    if not cfg.get("ckpt_path"):
        raise ConvattnError(
            "ckpt_path is not set; pass the checkpoint to test, e.g. "
            "convattn-eval ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt"
        )
    split = cfg.get("split", "test")
    check_choice("split", split, ("test", "val"))
    ckpt, _ = resolve_checkpoint(cfg.ckpt_path, "ckpt_path")
    model = load_classifier(ckpt)
    datamodule = instantiate_checked(cfg.data)
    check_data_matches(model, datamodule, "the data config")
    record.update(
        arm=model.hparams.backbone.get("arm"),
        size=model.hparams.backbone.get("size"),
        dataset=datamodule.name,
        ckpt_path=str(ckpt),
        split=split,
    )
    trainer: L.Trainer = instantiate(cfg.trainer, logger=instantiate_loggers(cfg.get("logger")))
    run_split = trainer.test if split == "test" else trainer.validate
    run_split(model, datamodule=datamodule, verbose=False)
    record.update(
        status="completed",
        metrics=metrics_with_prefix(trainer.callback_metrics, f"{split}/"),
        confusion_matrix=model.confusion_matrix,
        per_class_acc=model.per_class_accuracy,
        wall_time_s=time.time() - start,
    )
    write_record(record, cfg.paths.output_dir)
    print_summary(f"{split} split of {ckpt}", record.metrics, {"run dir": cfg.paths.output_dir})
    return record.metrics


def run(cfg: DictConfig) -> float | None:
    """The Hydra job of `convattn-eval` (`convattn.cli.eval_job`), once its config passed."""
    quiet_libraries()
    if cfg.get("print_config"):
        print_config(cfg)
    return run_cli(evaluate, cfg)

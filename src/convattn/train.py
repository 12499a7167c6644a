"""`convattn-train`: fit a classifier, then test its best checkpoint.

The console script is `convattn.cli.train`: before this module (and torch) loads, the Hydra
callbacks of conf/hydra/default.yaml (`convattn.config.guards`) check the config, then the run
dir (writable, no other experiment in it), before Hydra writes anything there.
"""

from __future__ import annotations

import time

from omegaconf import DictConfig, OmegaConf

from convattn.classifier import build_classifier
from convattn.cluster.distributed import job_process_group
from convattn.cluster.seeding import seed_everything
from convattn.cluster.slurm import requeue_on_signal
from convattn.config.check import check_config
from convattn.data.base import ClassificationDataModule
from convattn.errors import instantiate_checked
from convattn.run.lifecycle import finish, run_cli, task_wrapper
from convattn.run.record import RunRecord
from convattn.run.tracking import RunRecorder, run_facts
from convattn.run.trainer import (
    build_trainer,
    fit_checkpoint,
    test_best,
    tested_checkpoint,
)
from convattn.utils.console import print_config
from convattn.utils.quiet import quiet_libraries


@task_wrapper
def train(cfg: DictConfig, record: RunRecord) -> dict[str, float]:
    """Build data, model and trainer; fit; test the best checkpoint; record."""
    start = time.time()
    check_config(cfg)  # again here: a DDP rank or a sweeper plugin may bring it another way
    seed_everything(cfg.seed)
    datamodule: ClassificationDataModule = instantiate_checked(cfg.data)
    config = OmegaConf.to_container(cfg, resolve=True)
    model = build_classifier(config["model"], config["recipe"], datamodule)  # before data loads
    ckpt_path = fit_checkpoint(cfg, model) if cfg.train else tested_checkpoint(cfg, model)
    facts = run_facts(
        model, datamodule, task=cfg.task_name, arm=cfg.model.arm, size=cfg.model.get("size"),
        seed=cfg.seed, model=config["model"], output_dir=cfg.paths.output_dir, ckpt_path=ckpt_path
    )  # fmt: skip
    recorder = RunRecorder(record, facts, config, profile=cfg.get("profile", False))
    trainer = build_trainer(cfg, recorder)
    with job_process_group(cfg.paths.output_dir):  # DDP ranks started by fit() run this job
        if cfg.train:
            with requeue_on_signal(trainer):
                trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if cfg.test:
            test_best(trainer, model, datamodule, record.best_ckpt if cfg.train else ckpt_path)
    return finish(record, trainer.loggers, cfg.paths.output_dir, start)


def run(cfg: DictConfig) -> float | None:
    """The Hydra job of `convattn-train` (`convattn.cli.train_job`), once its config passed."""
    quiet_libraries()
    if cfg.get("print_config"):
        print_config(cfg)
    return run_cli(train, cfg)

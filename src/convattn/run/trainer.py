"""A run's Lightning Trainer: where fit starts, and the trainer with its callbacks, loggers
and cluster plugins."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from convattn.cluster.distributed import write_rank_config
from convattn.cluster.hardware import use_tensor_cores
from convattn.cluster.seeding import RankSeed
from convattn.cluster.slurm import cluster_environment
from convattn.errors import ConvattnError
from convattn.run.checkpoint_io import AtomicCheckpointIO
from convattn.run.identity import check_resume_mode, check_same_experiment, experiment_identity
from convattn.run.load import resolve_checkpoint
from convattn.run.loggers import instantiate_callbacks, instantiate_loggers
from convattn.run.resume import ResumeState, read_progress, resume_checkpoint
from convattn.run.tracking import RunRecorder


def check_budget(max_epochs: Any, max_steps: Any) -> None:
    """An endless run is a mistake on a shared cluster: max_epochs=-1 needs max_steps."""
    steps = -1 if max_steps is None else max_steps
    if max_epochs is not None and max_epochs < 1 and steps < 1:
        raise ConvattnError(
            f"trainer.max_epochs={max_epochs} with trainer.max_steps={max_steps} would train "
            "forever; set trainer.max_epochs to 1 or more, or set trainer.max_steps (e.g. "
            "trainer.max_epochs=-1 trainer.max_steps=5000)."
        )


def fit_checkpoint(cfg: DictConfig) -> str | None:
    """Where fit starts: `ckpt_path` if given (checked readable), else the run dir's own most
    advanced checkpoint if it was trained as this same experiment (a requeued or restarted
    run), else None: a fresh start."""
    check_resume_mode(cfg)
    if cfg.get("ckpt_path"):
        path, _ = resolve_checkpoint(cfg.ckpt_path, "ckpt_path")
        read_progress(path)  # a truncated or foreign file: one paragraph, before training
        return str(path)
    found = resume_checkpoint(cfg.paths.output_dir)
    if found is not None:
        check_same_experiment(cfg, found)
    return str(found) if found else None


def build_trainer(cfg: DictConfig, recorder: RunRecorder) -> L.Trainer:
    """The trainer for `cfg.trainer` with the configured callbacks and loggers, convattn's
    resume, seeding and recording callbacks, atomic checkpoint writes and the cluster's
    environment."""
    loggers = instantiate_loggers(cfg.get("logger"), recorder.facts)
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")),
                 ResumeState(experiment_identity(cfg)), recorder, RankSeed(cfg.seed)]  # fmt: skip
    environment = cluster_environment(cfg.trainer.get("devices"), cfg.trainer.get("num_nodes", 1))
    plugins = [AtomicCheckpointIO(), *([environment] if environment else [])]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                     plugins=plugins)  # fmt: skip
    # Lightning guessed the rank at import from RANK / SLURM_PROCID; the trainer knows it.
    rank_zero_only.rank = trainer.global_rank
    use_tensor_cores(trainer)
    write_rank_config(cfg, trainer.global_rank, trainer.world_size)
    return trainer


def test_best(
    trainer: L.Trainer, model: L.LightningModule, datamodule: Any, ckpt: str | None
) -> None:
    """Test the best checkpoint's weights (weights only, no callbacks; the recorder keeps the
    metrics).

    Not `trainer.test(ckpt_path=...)`: after fit, Lightning's EMA callback answers that load by
    restoring the raw weights, so the test would silently score the non-averaged model.
    """
    if ckpt:
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    trainer.test(model, datamodule, verbose=False)

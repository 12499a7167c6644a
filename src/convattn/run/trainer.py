"""A run's Lightning Trainer: where fit starts, and the trainer with its callbacks, loggers
and cluster plugins."""

from __future__ import annotations

import logging
from pathlib import Path
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

log = logging.getLogger("convattn")


def fit_checkpoint(cfg: DictConfig, model: L.LightningModule) -> str | None:
    """Where fit starts: the run dir's own most advanced checkpoint if it has one (a requeued or
    restarted run, checked to be this same experiment), else `ckpt_path` if given (checked
    readable and of this model), else None: a fresh start.

    The run dir's own checkpoint wins over `ckpt_path`: a fine-tune restarted with the same
    command (as Slurm's requeue does) goes on from its own progress, not from its start point.
    """
    check_resume_mode(cfg)
    found = resume_checkpoint(cfg.paths.output_dir)
    if found is not None:
        check_same_experiment(cfg, found)
        if cfg.get("ckpt_path"):
            log.info(
                "ckpt_path=%s is where this run started; it goes on from its own %s instead.",
                cfg.ckpt_path,
                found,
            )
        return str(found)
    if cfg.get("ckpt_path"):
        path, _ = resolve_checkpoint(cfg.ckpt_path, "ckpt_path")
        check_weights_fit(model, path, "ckpt_path")
        log.info("Fine-tuning from ckpt_path=%s", path)
        return str(path)
    return None


def tested_checkpoint(cfg: DictConfig, model: L.LightningModule) -> str:
    """With train=false, the checkpoint to test: `ckpt_path`, else the run dir's best.ckpt.
    A freshly initialised model is never tested (and never recorded as the run's result)."""
    if cfg.get("ckpt_path"):
        path, _ = resolve_checkpoint(cfg.ckpt_path, "ckpt_path")
    else:
        path = Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt"
        if not path.is_file():
            raise ConvattnError(
                f"train=false tests a trained checkpoint, and the run dir {cfg.paths.output_dir} "
                "has no checkpoints/best.ckpt. Pass ckpt_path=<a .ckpt file or a run dir> (e.g. "
                "ckpt_path=logs/train/runs/<run>), or drop train=false to train first."
            )
    check_weights_fit(model, path, "ckpt_path" if cfg.get("ckpt_path") else "the run dir's")
    log.info("train=false: testing %s", path)
    return str(path)


def check_weights_fit(model: L.LightningModule, path: Path, name: str) -> None:
    """The checkpoint is readable and holds weights of exactly this model (names and shapes)."""
    read_progress(path)  # a truncated or foreign file: one paragraph
    saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("state_dict")
    wanted = model.state_dict()
    if not isinstance(saved, dict):
        saved = {}
    missing = sorted(wanted.keys() - saved.keys())
    extra = sorted(saved.keys() - wanted.keys())
    shapes = [k for k in wanted.keys() & saved.keys()
              if getattr(saved[k], "shape", None) != wanted[k].shape]  # fmt: skip
    if missing or extra or shapes:
        example = (missing or extra or shapes)[0]
        raise ConvattnError(
            f"{name} checkpoint {path} holds the weights of another model: {len(missing)} "
            f"missing, {len(extra)} unexpected and {len(shapes)} of another shape (e.g. "
            f"{example!r}) for model.arm={model.hparams.backbone.get('arm')!r} as configured. "
            "Pass a checkpoint trained with this model config, or set the model config it was "
            "trained with (its run dir's .hydra/config.yaml)."
        )


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
    """Test the weights of `ckpt` (the best checkpoint; weights only, no callbacks), or the
    model as it is when there is none. The recorder keeps the metrics.

    Not `trainer.test(ckpt_path=...)`: after fit, Lightning's EMA callback answers that load by
    restoring the raw weights, so the test would silently score the non-averaged model.
    """
    if ckpt:
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    trainer.test(model, datamodule, verbose=False)

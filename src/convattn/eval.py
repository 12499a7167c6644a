"""`convattn-eval`: test a trained checkpoint on the data config's test split."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from convattn.classifier import ImageClassifier
from convattn.config_dir import CONFIG_DIR
from convattn.errors import ConvattnError, check_choice, instantiate_checked
from convattn.utils.console import print_config, print_summary
from convattn.utils.instantiate import instantiate_loggers
from convattn.utils.quiet import quiet_libraries
from convattn.utils.run_record import write_record
from convattn.utils.task import run_cli, task_wrapper

log = logging.getLogger("convattn")


def load_classifier(ckpt_path: str | None) -> ImageClassifier:
    """Rebuild the classifier from a checkpoint, with one clear line for a bad path."""
    if not ckpt_path:
        raise ConvattnError(
            "ckpt_path is not set; pass the checkpoint to test, e.g. "
            "convattn-eval ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt"
        )
    path = Path(ckpt_path).expanduser()
    if path.is_dir():  # a run dir: its best checkpoint
        path = path / "checkpoints" / "best.ckpt"
    if not path.is_file():
        raise ConvattnError(f"ckpt_path={ckpt_path!r}: no checkpoint file at {path}.")
    try:
        return ImageClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load raises many types for a file that is not a checkpoint
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConvattnError(
            f"ckpt_path={ckpt_path!r} could not be read as a convattn checkpoint ({reason})."
        ) from None


def check_data_matches(model: ImageClassifier, datamodule: L.LightningDataModule) -> None:
    trained = (model.hparams.in_chans, model.hparams.img_size, model.hparams.num_classes)
    given = (datamodule.in_chans, datamodule.img_size, datamodule.num_classes)
    if trained != given:
        raise ConvattnError(
            f"The checkpoint was trained on (channels, img_size, classes) = {trained} but the data "
            f"config gives {given}; pass the data config it was trained with, e.g. data.img_size="
            f"{trained[1]}."
        )


@task_wrapper
def evaluate(cfg: DictConfig) -> dict[str, Any]:
    start = time.time()
    model = load_classifier(cfg.get("ckpt_path"))
    datamodule = instantiate_checked(cfg.data)
    check_data_matches(model, datamodule)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=instantiate_loggers(cfg.get("logger")))
    split = cfg.get("split", "test")
    check_choice("split", split, ("test", "val"))
    run = trainer.test if split == "test" else trainer.validate
    run(model, datamodule=datamodule, verbose=False)
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{split}/")
    }
    record = {
        "status": "completed",
        "task": cfg.task_name,
        "arm": model.hparams.backbone.get("arm"),
        "ckpt_path": str(cfg.ckpt_path),
        "dataset": getattr(datamodule, "name", None),
        "metrics": metrics,
        "split": split,
        "confusion_matrix": getattr(model, "confusion_matrix", None),
        "per_class_acc": getattr(model, "per_class_accuracy", None),
        "wall_time_s": time.time() - start,
    }
    write_record(cfg.paths.output_dir, record)
    print_summary(f"{split} split of {cfg.ckpt_path}", metrics, {"run dir": cfg.paths.output_dir})
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> float | None:
    quiet_libraries()
    torch.manual_seed(cfg.seed)
    if cfg.get("print_config"):
        print_config(cfg)
    return run_cli(evaluate, cfg)


if __name__ == "__main__":
    main()

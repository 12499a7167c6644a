"""Load a trained run, a `.ckpt` file or a run dir, as data: nothing named in it runs.

Checkpoints are read with `torch.load(weights_only=True)`, so no pickled code can run. What a
checkpoint or a run dir's `.hydra/config.yaml` names is checked before anything is built: the
model must use convattn's backbone factory, the data a registered data module, the optimizer a
`torch.optim` class, and no other `_target_` may appear (`checkpoint_checks.allowed_target`
is the one allow-list). `convattn-eval`, `convattn-explain` and `convattn-report --deletion`
all load through here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from convattn.classifier import ImageClassifier
from convattn.data.base import ClassificationDataModule
from convattn.data.registry import dataset_targets, find_dataset
from convattn.errors import ConvattnError, find_user_error
from convattn.run.checkpoint_checks import (
    CHECKPOINT_CHECKS,
    check_section,
    checked_hparams,
    checked_value,
)


def resolve_checkpoint(
    path: str | os.PathLike, name: str = "checkpoint"
) -> tuple[Path, Path | None]:
    """(checkpoint file, run dir or None) for a .ckpt file or a run dir (its best.ckpt).

    The run dir is the one holding `.hydra/config.yaml`: <run>/checkpoints/<name>.ckpt.
    `name` is how messages call the value (e.g. "ckpt_path").
    """
    p = Path(path).expanduser()
    if p.is_dir():
        ckpt, run_dir = p / "checkpoints" / "best.ckpt", p
        if not ckpt.is_file():
            raise ConvattnError(
                f"{path} is a directory but holds no checkpoints/best.ckpt; pass a run dir of "
                "convattn-train (logs/train/runs/<run>) or a .ckpt file."
            )
    elif p.is_file():
        ckpt, run_dir = p, p.parent.parent if p.parent.name == "checkpoints" else p.parent
    else:
        raise ConvattnError(
            f"{name}={str(path)!r}: no checkpoint file at {p}; pass a .ckpt file (e.g. "
            "logs/train/runs/<run>/checkpoints/best.ckpt) or the run dir that holds it."
        )
    return ckpt, run_dir if (run_dir / ".hydra" / "config.yaml").is_file() else None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, loaded without running any pickled code."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for a file that is not a checkpoint
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        unsafe = "weights_only" in str(err) or "Unsupported global" in str(err)
        why = (
            "it holds pickled objects other than tensors and plain values, which convattn never "
            "writes and will not unpickle"
            if unsafe
            else f"{type(err).__name__}: {reason}"
        )
        raise ConvattnError(
            f"{path} could not be read as a convattn checkpoint ({why}). Pass a checkpoint that "
            "convattn-train wrote (a run dir, or its checkpoints/best.ckpt)."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConvattnError(
            f"{path} is not a Lightning checkpoint (no state_dict); pass a checkpoint that "
            "convattn-train wrote."
        )
    for key, check in CHECKPOINT_CHECKS.items():
        if key in checkpoint:
            checked_value(check, checkpoint[key], key, path)
    return checkpoint


def load_classifier(path: str | os.PathLike) -> ImageClassifier:
    """The classifier a checkpoint holds, in eval mode, after the checks above."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    hparams = checked_hparams(checkpoint.get("hyper_parameters"), path)
    try:
        model = ImageClassifier(**hparams)
    except Exception as err:  # the checks above passed, yet the arm's builder refused them
        raise ConvattnError(
            f"Refusing to load {path}: its hyperparameters do not build a model "
            f"({first_line(err)}); the file was altered or comes from another version. Pass a "
            "checkpoint that convattn-train wrote."
        ) from None
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ConvattnError(
            f"{path}: its weights do not fit the model its hyperparameters describe "
            f"({' '.join(str(err).split())[:400]}); the file was altered or comes from another "
            "version."
        ) from None
    return model.eval()


def first_line(err: BaseException) -> str:
    """`Type: first line of the message`, at most 300 characters: enough to say why."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:300] if lines else ''}"


def checked_data_config(config: Any, source: Path) -> dict[str, Any]:
    """A run config's `data` section, refused unless it names a convattn data module and
    holds only plain values."""
    if not isinstance(config, dict) or not isinstance(config.get("_target_"), str):
        raise ConvattnError(f"{source} has no data config with a _target_.")
    allowed, nested = check_section("data", config, "data")
    if not allowed or nested:
        why = [] if allowed else [f"data _target_={config['_target_']!r}"]
        why += [f"a _target_ at {where}" for where in nested]
        raise ConvattnError(
            f"Refusing to use {source}: it names {'; '.join(why)}. A run's data config must "
            f"name one of convattn's data modules ({', '.join(sorted(dataset_targets()))}) "
            "with plain values. Nothing in it was run."
        )
    return config


def read_run_data_config(run_dir: Path) -> dict[str, Any]:
    """The data section of a run dir's `.hydra/config.yaml`, resolved and checked."""
    from omegaconf import OmegaConf

    path = run_dir / ".hydra" / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
        config = OmegaConf.create(raw)
        data = OmegaConf.to_container(config.data, resolve=True)
    except Exception as err:  # YAML errors, interpolations that do not resolve
        raise ConvattnError(
            f"{path} cannot be read as a run config ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})."
        ) from None
    return checked_data_config(data, path)


def build_datamodule(config: dict[str, Any]) -> ClassificationDataModule:
    """The data module a checked data config names (see `checked_data_config`)."""
    module = find_dataset(config.get("_target_"))
    if module is None:
        raise ConvattnError(f"The data config names no registered data module: {config!r}")
    options = {k: v for k, v in config.items() if k != "_target_"}
    try:
        return module(**options)
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is not None:
            raise user_error from None
        if isinstance(err, TypeError):
            raise ConvattnError(f"The data config does not fit its module: {err}") from None
        raise


def check_data_matches(
    model: ImageClassifier, datamodule: ClassificationDataModule, what: str
) -> None:
    """Stop unless `datamodule` gives the (channels, img_size, classes) the model was trained on."""
    hp = model.hparams
    trained = (hp.in_chans, hp.img_size, hp.num_classes)
    given = (datamodule.in_chans, datamodule.img_size, datamodule.num_classes)
    if trained != given:
        raise ConvattnError(
            f"The checkpoint was trained on (channels, img_size, classes) = {trained} but {what} "
            f"gives {given}; pass the data config it was trained with, e.g. data.img_size="
            f"{trained[1]}."
        )


@dataclass
class Run:
    """A trained model and where it came from; `data_config` is None without a run dir."""

    ckpt: Path
    run_dir: Path | None
    model: ImageClassifier
    data_config: dict[str, Any] | None = None
    label: str = ""
    classes: list[str] | None = field(default=None)

    @property
    def arm(self) -> str:
        return str(self.model.hparams.backbone.get("arm", "model"))

    def datamodule(self) -> ClassificationDataModule:
        """The run's data module from its saved data config, checked against the model."""
        if self.data_config is None:
            raise ConvattnError(
                f"{self.ckpt} has no run config (<run dir>/.hydra/config.yaml two levels above "
                "the checkpoint), so its test split is unknown; pass the run dir of "
                "convattn-train, or explain image files with --images FILE..."
            )
        dm = build_datamodule(self.data_config)
        check_data_matches(self.model, dm, f"its run config ({self.run_dir})")
        self.classes = dm.classes
        return dm


def load_run(path: str | os.PathLike) -> Run:
    """Load a checkpoint (or run dir) and, when there is one, its run's data config."""
    ckpt, run_dir = resolve_checkpoint(path)
    model = load_classifier(ckpt)
    data_config = read_run_data_config(run_dir) if run_dir is not None else None
    return Run(ckpt=ckpt, run_dir=run_dir, model=model, data_config=data_config)

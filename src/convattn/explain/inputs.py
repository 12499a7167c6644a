"""What the explainers run on: a trained run (model + its data config) and model-ready images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image

from convattn.classifier import ImageClassifier
from convattn.errors import ConvattnError, instantiate_checked

PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass
class Run:
    """A trained model and where it came from; `data_config` is None without a run dir."""

    ckpt: Path
    run_dir: Path | None
    model: ImageClassifier
    data_config: Any | None = None
    label: str = ""
    classes: list[str] | None = field(default=None)

    @property
    def arm(self) -> str:
        return str(self.model.hparams.backbone.get("arm", "model"))


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(checkpoint file, run dir or None) for a .ckpt file or a run dir (its best.ckpt).

    The run dir is the one holding `.hydra/config.yaml`: <run>/checkpoints/<name>.ckpt.
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
            f"No checkpoint at {path}; pass a .ckpt file (e.g. logs/train/runs/<run>/checkpoints/"
            "best.ckpt) or the run dir that holds it."
        )
    return ckpt, run_dir if (run_dir / ".hydra" / "config.yaml").is_file() else None


def load_run(path: str | os.PathLike) -> Run:
    """Load a checkpoint (or run dir) and, when there is one, its run's data config."""
    from convattn.eval import load_classifier  # eval pulls in the CLI stack; load it lazily

    ckpt, run_dir = resolve_checkpoint(path)
    model = load_classifier(str(ckpt)).eval()
    data_config = None
    if run_dir is not None:
        data_config = OmegaConf.load(run_dir / ".hydra" / "config.yaml").get("data")
    return Run(ckpt=ckpt, run_dir=run_dir, model=model, data_config=data_config)


def run_datamodule(run: Run) -> L.LightningDataModule:
    """The run's datamodule from its saved data config, checked against the model's shape."""
    if run.data_config is None:
        raise ConvattnError(
            f"{run.ckpt} has no run config (<run dir>/.hydra/config.yaml two levels above the "
            "checkpoint), so its test split is unknown; pass the run dir of convattn-train, or "
            "explain image files with --images FILE..."
        )
    dm = instantiate_checked(run.data_config)
    hp = run.model.hparams
    trained = (hp.in_chans, hp.img_size, hp.num_classes)
    given = (dm.in_chans, dm.img_size, dm.num_classes)
    if trained != given:
        raise ConvattnError(
            f"{run.ckpt} was trained on (channels, img_size, classes) = {trained} but its run "
            f"config's data gives {given}; the run dir does not belong to this checkpoint."
        )
    classes = getattr(dm, "classes", None)
    if isinstance(classes, Sequence) and len(classes) == dm.num_classes:
        run.classes = [str(c) for c in classes]
    return dm


def to_model_ready(
    dm: L.LightningDataModule, batch: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch as the model sees it: the datamodule's own device-side transform.

    In-memory datamodules normalise in `on_after_batch_transfer` (no augmentation without a
    training trainer); if that hook needs a trainer, fall back to `dm.transform(x, train=False)`,
    then to plain float conversion.
    """
    try:
        images, labels = dm.on_after_batch_transfer(batch, 0)
    except (AttributeError, RuntimeError, TypeError):
        images, labels = batch
        transform = getattr(dm, "transform", None)
        if callable(transform):
            images = transform(images, train=False)
    if images.dtype == torch.uint8:  # the hook was the identity: widen it ourselves
        images = images.float() / 255
    return images.float(), labels


def model_ready_batches(
    dm: L.LightningDataModule, n: int | None, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` images (all for None) of a split, normalised as in training, with labels."""
    dm.setup(split)
    loader = getattr(dm, f"{split}_dataloader")()
    images, labels, count = [], [], 0
    with torch.no_grad():
        for batch in loader:
            x, y = to_model_ready(dm, batch)
            images.append(x)
            labels.append(y)
            count += len(y)
            if n is not None and count >= n:
                break
    if not images:
        raise ConvattnError(f"The {split} split of the run's data config is empty.")
    return torch.cat(images)[:n], torch.cat(labels)[:n]


def load_image_files(
    paths: Sequence[str | os.PathLike], in_chans: int, img_size: int
) -> torch.Tensor:
    """Image files as a model batch (N, in_chans, img_size, img_size), normalised per image.

    Per-image standardisation stands in for the training-set statistics, which a checkpoint
    does not store.
    """
    modes = {1: "L", 3: "RGB"}
    if in_chans not in modes:
        raise ConvattnError(f"--images supports 1- or 3-channel models, not in_chans={in_chans}.")
    out = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img.load()
                arr = np.asarray(img.convert(modes[in_chans]), dtype=np.float32) / 255.0
        except PIL_ERRORS as err:
            raise ConvattnError(
                f"Cannot read the image file {path} ({type(err).__name__}: {err}); pass PNG, JPEG "
                "or another format PIL can open."
            ) from None
        x = torch.from_numpy(arr.reshape(*arr.shape[:2], -1)).permute(2, 0, 1)[None]
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", antialias=True)[0]
        mean = x.mean(dim=(1, 2), keepdim=True)
        std = x.std(dim=(1, 2), keepdim=True).clamp(min=1e-6)
        out.append((x - mean) / std)
    return torch.stack(out)


def display_images(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) model inputs -> (B, H, W[, 3]) floats in [0, 1], min-max per image."""
    x = images.detach().float().cpu()
    flat = x.flatten(1)
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    x = (x - low[:, None, None, None]) / (high - low).clamp(min=1e-12)[:, None, None, None]
    arr = x.permute(0, 2, 3, 1).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr[..., :3]

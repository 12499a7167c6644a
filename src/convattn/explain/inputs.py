"""What the explainers run on: model-ready images from a run's data or from image files."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convattn.data.base import ClassificationDataModule
from convattn.data.image_files import PIL_ERRORS
from convattn.errors import ConvattnError


def model_ready_batches(
    dm: ClassificationDataModule, n: int | None, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` images (all for None) of a split, normalised as in training, with labels."""
    dm.setup(split)
    images, labels, count = [], [], 0
    with torch.no_grad():
        for batch in dm.loader(split):
            x, y = dm.model_ready(batch)
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

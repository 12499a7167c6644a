"""What the explainers run on: model-ready images from a run's data or from image files."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convattn.data.base import ClassificationDataModule
from convattn.data.image_files import PIL_ERRORS
from convattn.errors import ConvattnError


def model_ready_chunks(
    dm: ClassificationDataModule,
    n: int | None,
    split: str = "test",
    batch_size: int = 128,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first `n` images (all for None) of a split, normalised as in training, with labels,
    in chunks of exactly `batch_size` (the last may be smaller), on `device` (None: as loaded).

    Streams: at most one loader batch and one chunk are held at a time, whatever the split's
    size. Each raw batch moves to `device` before `dm.model_ready`, as in training.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if n is not None and n < 1:
        raise ConvattnError(f"Asked for {n} images of the {split} split; pass at least 1.")
    dm.setup(split)
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    held, left, seen = 0, n, 0
    for batch in dm.loader(split):
        if device is not None:
            batch = tuple(t.to(device) for t in batch)
        with torch.no_grad():
            x, y = dm.model_ready(batch)
        if left is not None:
            x, y = x[:left], y[:left]
            left -= len(y)
        xs.append(x)
        ys.append(y)
        held += len(y)
        seen += len(y)
        while held >= batch_size:
            x, y = (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))
            yield x[:batch_size], y[:batch_size]
            held -= batch_size
            xs, ys = ([x[batch_size:]], [y[batch_size:]]) if held else ([], [])
        if left == 0:
            break
    if held:
        yield (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))
    if not seen:
        raise ConvattnError(f"The {split} split of the run's data config is empty.")


def model_ready_batches(
    dm: ClassificationDataModule,
    n: int | None,
    split: str = "test",
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `n` images (all for None) of a split, normalised as in training, with labels,
    as one batch on `device`: for a few images (`model_ready_chunks` streams a whole split)."""
    chunks = list(model_ready_chunks(dm, n, split, dm.eval_batch_size, device))
    return torch.cat([x for x, _ in chunks]), torch.cat([y for _, y in chunks])


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

"""Image files on disk: reading them as RGB, checking a class-folder tree, finding bad files."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from convattn.errors import ConvattnError

# Errors PIL raises on a file that is not a readable image (UnidentifiedImageError and
# "image file is truncated" are OSErrors; some broken headers raise SyntaxError/ValueError).
PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class CorruptImageError(ConvattnError):
    """An image file that cannot be decoded; the message names the file.

    A DataLoader worker's exception is re-raised in the main process as
    `type(err)("Caught ... in DataLoader worker ...\\nOriginal Traceback ...: <message>")`;
    this class keeps only its own one-paragraph message from such a text.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if message.startswith("Caught ") and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, the one input the models take (in_chans=3).

    - grey (L, 1) is copied into all three channels;
    - 16/32-bit grey (I;16, I, F) is scaled from 0-65535 to 0-255 if it exceeds 255, then as L;
    - palette (P, PA) is expanded to its colours;
    - alpha (RGBA, LA, PA, transparent palettes) is dropped, not composited: a transparent
      pixel shows the colour stored under it, as in torchvision's and timm's loaders;
    - CMYK, YCbCr, LAB, HSV are converted by PIL.
    """
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        grey = np.asarray(img, dtype=np.float32)
        if grey.size and grey.max() > 255:
            grey = grey / 257.0
        img = Image.fromarray(grey.round().clip(0, 255).astype(np.uint8))
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA")  # via RGBA: PIL warns when a palette has transparency
    return img if img.mode == "RGB" else img.convert("RGB")


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode an image file fully and return it as RGB (see `to_rgb`); errors name the file."""
    try:
        with Image.open(path) as img:
            img.load()  # decodes everything: catches truncated files here, not mid-transform
            return to_rgb(img)
    except PIL_ERRORS as err:
        raise CorruptImageError(
            f"Cannot read the image file {path} ({type(err).__name__}: {err}). Replace or "
            "delete it, or set data.skip_corrupt=true to skip unreadable images."
        ) from None


def image_problem(path: str) -> str | None:
    """Why `path` cannot be decoded, or None if it can (a full decode, the cost of one load)."""
    try:
        with Image.open(path) as img:
            img.load()
    except PIL_ERRORS as err:
        return f"{type(err).__name__}: {err}"
    return None


def find_corrupt(paths: Sequence[str], threads: int = 1) -> list[tuple[str, str]]:
    """(path, reason) of every file in `paths` that PIL cannot decode.

    Costs one full decode of every image, about one epoch of image loading without the
    augmentation: a second or two per 1,000 small JPEGs and core, ~10-20 min for ImageNet's
    1.28 M on 16 cores. Pillow releases the GIL while decoding, so threads scale.
    """
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        problems = list(pool.map(image_problem, paths))
    return [(p, why) for p, why in zip(paths, problems, strict=True) if why is not None]


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def class_folders(directory: Path) -> list[str]:
    """Sorted class-folder names in `directory`; hidden ones (.ipynb_checkpoints) are ignored."""
    return sorted(
        e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith(".")
    )


def has_image(folder: Path) -> bool:
    """Whether `folder` holds an image file, searched recursively like ImageFolder; stops early."""
    for _, _, files in os.walk(folder, followlinks=True):
        if any(is_image_file(f) for f in files):
            return True
    return False


def check_tree(root: Path, splits: Sequence[str]) -> list[str]:
    """The class names shared by `root/<split>` for each split; ConvattnError on a bad tree.

    Every split must have the same class folders, and every class folder at least one image.
    """
    classes = {split: class_folders(root / split) for split in splits}
    reference = splits[0]
    if not classes[reference]:
        raise ConvattnError(
            f"{root / reference} has no class folders: an image-folder dataset needs "
            f"{root}/<split>/<class>/<image> with one folder per class."
        )
    for split in splits[1:]:
        if classes[split] != classes[reference]:
            only_ref = sorted(set(classes[reference]) - set(classes[split]))
            only_split = sorted(set(classes[split]) - set(classes[reference]))
            raise ConvattnError(
                f"The class folders of {root / reference} and {root / split} differ: only in "
                f"{reference}/: {only_ref or 'none'}; only in {split}/: {only_split or 'none'}. "
                "Every split needs the same class folders (an empty one is not allowed either)."
            )
    empty = [str(root / s / c) for s in splits for c in classes[s] if not has_image(root / s / c)]
    if empty:
        raise ConvattnError(
            f"Class folder(s) without any image file ({', '.join(IMG_EXTENSIONS)}): "
            f"{', '.join(empty)}. Add images or remove the class from every split."
        )
    return classes[reference]


class RGBImageFolder(ImageFolder):
    """torchvision's ImageFolder with fixed class names, hidden folders ignored, images as RGB.

    `classes` is passed in so that every split maps a class name to the same index.
    """

    def __init__(
        self, root: Path, classes: Sequence[str], transform: Callable | None = None
    ) -> None:
        self._given_classes = list(classes)
        super().__init__(str(root), transform=transform, loader=load_rgb, allow_empty=True)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return self._given_classes, {c: i for i, c in enumerate(self._given_classes)}

    @property
    def labels(self) -> torch.Tensor:
        return torch.as_tensor(self.targets, dtype=torch.long)

    def select(self, index: Sequence[int] | torch.Tensor) -> RGBImageFolder:
        """A copy restricted to the samples at `index` (the images are not read)."""
        subset = copy.copy(self)
        subset.samples = [self.samples[int(i)] for i in index]
        subset.imgs = subset.samples
        subset.targets = [label for _, label in subset.samples]
        return subset

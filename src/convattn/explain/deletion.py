"""Deletion metric (Petsiuk et al. 2018, RISE): remove the most-attended pixels first.

At K+1 steps (0 %, 1/K, ..., 100 % of the pixels) the top-ranked pixels of each image's map
are set to a fill value in normalised input space, and accuracy and the mean softmax
probability of the true class are measured. The score is the area under each curve over the
deleted fraction: lower means the map found what the model's decision rests on.

Everything runs batch by batch (`DeletionCurve` keeps per-step running sums), so memory is
O(batch x H x W) whatever the split's size: `deletion_for` streams the test split and never
holds its images, maps or pixel ranks all at once.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from convattn.backbones.capture import eval_mode
from convattn.errors import ConvattnError
from convattn.explain.device import module_device
from convattn.explain.inputs import model_ready_chunks
from convattn.explain.maps import image_sized
from convattn.explain.methods import Probe, deletion_method
from convattn.run.load import Run, load_run

Fill = Literal["zero", "mean"]


def rank_dtype(num_pixels: int) -> torch.dtype:
    """The smallest signed integer dtype that holds 0..num_pixels (ranks and step thresholds)."""
    for dtype in (torch.int8, torch.int16, torch.int32):
        if num_pixels <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel by map value, 0 = most attended: (B, H, W) -> (B, H*W).

    In `rank_dtype(H*W)` (int32 at 224 px instead of int64); call it per batch.
    """
    flat = maps.flatten(1)
    num_pixels = flat.shape[1]
    dtype = rank_dtype(num_pixels)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty(order.shape, dtype=dtype, device=order.device)
    positions = torch.arange(num_pixels, dtype=dtype, device=order.device)
    ranks.scatter_(1, order, positions.expand_as(order))
    return ranks


def fill_values(images: torch.Tensor, fill: Fill) -> torch.Tensor:
    """What deleted pixels become: 0 (the training mean after normalisation) or the image mean."""
    if fill == "zero":
        return torch.zeros_like(images[:, :, :1, :1])
    if fill == "mean":
        return images.mean(dim=(2, 3), keepdim=True)
    raise ValueError(f"fill must be 'zero' or 'mean', not {fill!r}")


def area_under(fractions: list[float], values: list[float]) -> float:
    """Trapezoidal area under values(fractions) on [0, 1]."""
    pairs = zip(fractions[:-1], fractions[1:], values[:-1], values[1:], strict=True)
    return float(sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in pairs))


class DeletionCurve:
    """A deletion curve fed one batch at a time (`add`), read with `result`.

    Keeps only the per-step sums of correct predictions and true-class probabilities, so a
    whole split costs the memory of one batch.
    """

    def __init__(self, steps: int = 10, fill: Fill = "zero") -> None:
        if fill not in ("zero", "mean"):
            raise ValueError(f"fill must be 'zero' or 'mean', not {fill!r}")
        self.fill: Fill = fill
        self.fractions = [k / steps for k in range(steps + 1)]
        self.correct = [0.0] * len(self.fractions)
        self.p_true = [0.0] * len(self.fractions)
        self.num_images = 0

    @torch.no_grad()
    def add(
        self, backbone: nn.Module, images: torch.Tensor, labels: torch.Tensor, maps: torch.Tensor
    ) -> None:
        """Score one batch at every step: images (B, C, H, W) on the backbone's device, labels
        (B,), maps (B, H, W) with higher = more attended. Runs the model in eval mode."""
        if maps.shape != (images.shape[0], *images.shape[2:]):
            raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
        device = images.device
        ranks = pixel_ranks(maps.to(device)).view(maps.shape)  # (B, H, W)
        fills = fill_values(images, self.fill)
        y = labels.to(device)
        num_pixels = ranks[0].numel()
        with eval_mode(backbone):
            for k, frac in enumerate(self.fractions):
                deleted = (ranks < round(frac * num_pixels))[:, None]  # (B, 1, H, W)
                x = torch.where(deleted, fills, images)
                probs = backbone(x).float().softmax(dim=1)
                self.correct[k] += (probs.argmax(dim=1) == y).sum().item()
                self.p_true[k] += probs.gather(1, y[:, None]).sum().item()
        self.num_images += len(images)

    def result(self) -> dict[str, Any]:
        """The deleted `fractions`, `acc` and `prob` per step and their areas `auc_acc` and
        `auc_prob` (lower = better map), `num_images` and `fill`."""
        acc = [c / self.num_images for c in self.correct]
        prob = [p / self.num_images for p in self.p_true]
        return {
            "fractions": self.fractions,
            "acc": acc,
            "prob": prob,
            "auc_acc": area_under(self.fractions, acc),
            "auc_prob": area_under(self.fractions, prob),
            "num_images": self.num_images,
            "fill": self.fill,
        }


def deletion_curve(
    backbone: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    maps: torch.Tensor,
    steps: int = 10,
    fill: Fill = "zero",
    batch_size: int = 128,
) -> dict[str, Any]:
    """Accuracy and true-class probability as the top-ranked pixels of `maps` are deleted.

    images (B, C, H, W) normalised model inputs; labels (B,); maps (B, H, W), higher = more
    attended. Returns the deleted `fractions`, `acc` and `prob` per step and their areas
    `auc_acc` and `auc_prob` (lower = better map). Works `batch_size` images at a time (pixel
    ranks included); `deletion_for` also streams the images themselves.
    """
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
    curve = DeletionCurve(steps, fill)
    for start in range(0, len(images), batch_size):
        sl = slice(start, start + batch_size)
        curve.add(backbone, images[sl], labels[sl], maps[sl])
    return curve.result()


def random_maps(
    n: int,
    size: tuple[int, int],
    grid: int = 8,
    seed: int = 0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Seeded random maps (n, *size), uniform noise on a `grid` x `grid` lattice upsampled.

    With a (CPU) `generator`, the noise continues its stream instead of starting at `seed`:
    drawing a split's maps in batches from one generator seeded `seed` gives the same maps as
    one call for the whole split (torch draws CPU uniforms one after another; a test checks).

    The baseline ranking for the deletion metric. Smooth like the explainers' maps (which come
    from a 4x4 to 8x8 grid at 32 px) on purpose: deleting scattered single pixels pushes the
    input off the data distribution faster than deleting any contiguous region, which would
    make every map look worse than chance.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, grid, grid, generator=generator)
    return F.interpolate(noise, size=size, mode="bilinear", align_corners=False)[:, 0]


def deletion_maps(
    backbone: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128
) -> torch.Tensor:
    """Image-sized maps of `deletion_method()` for the true class, in batches: (B, H, W)."""
    method = deletion_method()
    out = []
    for start in range(0, len(images), batch_size):
        sl = slice(start, start + batch_size)
        raw = method.maps(Probe(backbone, images[sl], labels[sl]))[method.name]
        out.append(image_sized(raw, tuple(images.shape[-2:])))
    return torch.cat(out)


def deletion_for(
    run: Run,
    num_images: int | None = None,
    steps: int = 10,
    fill: Fill = "zero",
    random_baseline: bool = True,
    seed: int = 0,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 128,
) -> dict[str, Any]:
    """Deletion curve of a loaded run on its test split, ranking pixels by the map of
    `deletion_method()` for the true class (Grad-CAM: every arm has it, so scores compare).

    With `random_baseline`, also the curve for seeded smooth random maps (`random_maps`) under
    "random": a score is best read relative to it (both depend on the model's accuracy).

    The split is streamed `batch_size` images at a time: memory is O(batch_size x H x W), never
    O(N x H x W). `device`: where to run (the model is moved there); None keeps the model where
    it is. `batch_size` changes the numbers only by floating-point rounding.
    """
    if device is not None:
        run.model.to(device)
    backbone = run.model.backbone
    method = deletion_method()
    if not method.applies_to(backbone):
        raise ConvattnError(
            f"The deletion metric ranks pixels by {method.title} maps, which the {run.arm!r} arm "
            f"({type(backbone).__name__}) does not have, so it gets no deletion score; leave "
            "this run out of the deletion metric."
        )
    device = module_device(backbone)
    by_map = DeletionCurve(steps, fill)
    by_random = DeletionCurve(steps, fill)
    generator = torch.Generator().manual_seed(seed)
    chunks = model_ready_chunks(run.datamodule(), num_images, "test", batch_size, device)
    for images, labels in chunks:
        maps = deletion_maps(backbone, images, labels, batch_size)
        by_map.add(backbone, images, labels, maps)
        if random_baseline:
            size = tuple(images.shape[2:])
            noise = random_maps(len(labels), size, seed=seed, generator=generator)
            by_random.add(backbone, images, labels, noise)
    result = by_map.result()
    result |= {"arm": run.arm, "ckpt": str(run.ckpt), "map": method.name}
    if random_baseline:
        result["random"] = by_random.result()
    return result


def deletion_for_run(
    path: str | os.PathLike,
    num_images: int | None = None,
    steps: int = 10,
    fill: Fill = "zero",
    random_baseline: bool = True,
    *,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """`deletion_for` a checkpoint file or run dir (which needs its `.hydra/config.yaml`).

    `device`: where to run; None: the CPU, where the checkpoint loads.
    """
    return deletion_for(load_run(path), num_images, steps, fill, random_baseline, device=device)


def deletion_auc_for_run(
    run_dir: str | os.PathLike,
    num_images: int | None = None,
    metric: Literal["acc", "prob"] = "acc",
    steps: int = 10,
    *,
    device: torch.device | str | None = None,
) -> float:
    """The deletion AUC of a run's deletion map on its test split (lower = better); a report
    column."""
    result = deletion_for_run(
        run_dir, num_images, steps=steps, random_baseline=False, device=device
    )
    return float(result[f"auc_{metric}"])

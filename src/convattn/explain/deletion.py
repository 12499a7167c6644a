"""Deletion metric (Petsiuk et al. 2018, RISE): remove the most-attended pixels first.

At K+1 steps (0 %, 1/K, ..., 100 % of the pixels) the top-ranked pixels of each image's map
are set to a fill value in normalised input space, and accuracy and the mean softmax
probability of the true class are measured. The score is the area under each curve over the
deleted fraction: lower means the map found what the model's decision rests on.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from convattn.backbones.capture import eval_mode
from convattn.explain.gradcam import grad_cam
from convattn.explain.inputs import model_ready_batches
from convattn.explain.maps import image_sized
from convattn.runs import Run, load_run

Fill = Literal["zero", "mean"]


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank of each pixel by map value, 0 = most attended: (B, H, W) -> (B, H*W)."""
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
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


@torch.no_grad()
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
    `auc_acc` and `auc_prob` (lower = better map).
    """
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
    device = images.device
    ranks = pixel_ranks(maps.to(device)).view(maps.shape)  # (B, H, W)
    fills = fill_values(images, fill)
    num_pixels = maps[0].numel()
    fractions = [k / steps for k in range(steps + 1)]
    acc, prob = [], []
    with eval_mode(backbone):
        for frac in fractions:
            deleted = (ranks < round(frac * num_pixels))[:, None]  # (B, 1, H, W)
            correct, p_true = 0.0, 0.0
            for start in range(0, len(images), batch_size):
                sl = slice(start, start + batch_size)
                x = torch.where(deleted[sl], fills[sl], images[sl])
                probs = backbone(x).float().softmax(dim=1)
                y = labels[sl].to(device)
                correct += (probs.argmax(dim=1) == y).sum().item()
                p_true += probs.gather(1, y[:, None]).sum().item()
            acc.append(correct / len(images))
            prob.append(p_true / len(images))
    return {
        "fractions": fractions,
        "acc": acc,
        "prob": prob,
        "auc_acc": area_under(fractions, acc),
        "auc_prob": area_under(fractions, prob),
        "num_images": len(images),
        "fill": fill,
    }


def random_maps(n: int, size: tuple[int, int], grid: int = 8, seed: int = 0) -> torch.Tensor:
    """Seeded random maps (n, *size), uniform noise on a `grid` x `grid` lattice upsampled.

    The baseline ranking for the deletion metric. Smooth like the explainers' maps (which come
    from a 4x4 to 8x8 grid at 32 px) on purpose: deleting scattered single pixels pushes the
    input off the data distribution faster than deleting any contiguous region, which would
    make every map look worse than chance.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(n, 1, grid, grid, generator=generator)
    return F.interpolate(noise, size=size, mode="bilinear", align_corners=False)[:, 0]


def gradcam_maps(
    backbone: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 128
) -> torch.Tensor:
    """Image-sized Grad-CAM of the true class, in batches: (B, H, W)."""
    out = []
    for start in range(0, len(images), batch_size):
        sl = slice(start, start + batch_size)
        cam, _ = grad_cam(backbone, images[sl], labels[sl])
        out.append(image_sized(cam, tuple(images.shape[-2:])))
    return torch.cat(out)


def deletion_for(
    run: Run,
    num_images: int | None = None,
    steps: int = 10,
    fill: Fill = "zero",
    random_baseline: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Deletion curve of a loaded run on its test split, ranking pixels by Grad-CAM.

    Grad-CAM (of the true class) is the one map every arm has, so scores compare across arms.
    With `random_baseline`, also the curve for seeded smooth random maps (`random_maps`) under
    "random": a score is best read relative to it (both depend on the model's accuracy).
    """
    images, labels = model_ready_batches(run.datamodule(), num_images, split="test")
    backbone = run.model.backbone
    maps = gradcam_maps(backbone, images, labels)
    result = deletion_curve(backbone, images, labels, maps, steps, fill)
    result |= {"arm": run.arm, "ckpt": str(run.ckpt), "map": "gradcam"}
    if random_baseline:
        noise = random_maps(len(labels), tuple(images.shape[2:]), seed=seed)
        result["random"] = deletion_curve(backbone, images, labels, noise, steps, fill)
    return result


def deletion_for_run(
    path: str | os.PathLike,
    num_images: int | None = None,
    steps: int = 10,
    fill: Fill = "zero",
    random_baseline: bool = True,
) -> dict[str, Any]:
    """`deletion_for` a checkpoint file or run dir (which needs its `.hydra/config.yaml`)."""
    return deletion_for(load_run(path), num_images, steps, fill, random_baseline)


def deletion_auc_for_run(
    run_dir: str | os.PathLike,
    num_images: int | None = None,
    metric: Literal["acc", "prob"] = "acc",
    steps: int = 10,
) -> float:
    """The deletion AUC of a run's Grad-CAM on its test split (lower = better); a report column."""
    result = deletion_for_run(run_dir, num_images, steps=steps, random_baseline=False)
    return float(result[f"auc_{metric}"])

"""`explain_maps`: every map the method table gives an arm, image-sized, from one call."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from convattn.backbones.base import Backbone
from convattn.explain.methods import Probe, map_methods_for


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map of (B, H, W) to [0, 1].

    A constant map ranks no pixel above another and becomes uniform 1 (so every map has
    maximum 1); non-finite values are treated as 0.
    """
    flat = torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0).flatten(1)
    low, high = flat.min(dim=1, keepdim=True).values, flat.max(dim=1, keepdim=True).values
    span = high - low
    flat = torch.where(span > 1e-12, (flat - low) / span.clamp(min=1e-12), torch.ones_like(flat))
    return flat.view_as(maps)


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, h, w) maps to (B, *size)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps.float()
    out = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return out[:, 0]


def image_sized(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Upsample, then normalise: the form every map is returned in."""
    return normalise(upsample(maps, size))


def explain_maps(
    backbone: Backbone, images: torch.Tensor, targets: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Named maps (B, H, W) for images (B, C, H, W), each image-sized, finite and in [0, 1]:
    those of every method in `explain.methods` that applies to the backbone, in table order.

    `targets`: the class per image that class-specific maps (Grad-CAM) explain; None: the
    predicted class. The model's train/eval flags are restored and no parameter gradients are
    left behind.
    """
    size = tuple(images.shape[-2:])
    with torch.inference_mode(False):  # callers may hold inference tensors (Lightning hooks)
        images = images.detach().clone()
    probe = Probe(backbone, images, targets)
    maps: dict[str, torch.Tensor] = {}
    for method in map_methods_for(backbone):
        maps |= method.maps(probe)
    return {name: image_sized(m, size).cpu() for name, m in maps.items()}

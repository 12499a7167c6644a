"""`explain_maps`: every arm's named maps, image-sized and normalised, from one call.

Names: "gradcam" (all arms), "rollout" and "head_<i>" (last block, vit / hybrid),
"cbam_<stage>" (the cbam arm's spatial gates, e.g. "cbam_layer3").
"""

from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F

from convattn.backbones.base import Backbone, TokenLayout
from convattn.explain.gradcam import grad_cam
from convattn.explain.rollout import head_token_maps, rollout_token_map


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


def transformer_maps(
    backbone: Backbone, layout: TokenLayout, images: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Rollout and the last block's per-head maps of a token model (grid-sized)."""
    attentions = list(backbone.attention_maps(images).values())  # forward order
    prefix, cls_row = layout.prefix, layout.pooled_by_prefix
    rollout = rollout_token_map(attentions, prefix, cls_row)
    out = {"rollout": rollout.reshape(-1, *layout.grid)}
    heads = head_token_maps(attentions[-1], prefix, cls_row)
    heads = heads.reshape(*heads.shape[:2], *layout.grid)
    for h in range(heads.shape[1]):
        out[f"head_{h}"] = heads[:, h]
    return out


def spatial_gate_maps(backbone: Backbone, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The mean spatial gate over each stage ("layer2.1.se.spatial" -> "cbam_layer2").

    A stage's gates share its resolution and are averaged so each stage gets
    one map. Empty for arms without spatial gates (cnn, se / eca variants).
    """
    stages: dict[str, list[torch.Tensor]] = defaultdict(list)
    for name, gate in backbone.attention_maps(images).items():
        stages[name.split(".")[0]].append(gate.float())
    return {f"cbam_{stage}": torch.stack(g).mean(dim=0) for stage, g in stages.items()}


@torch.no_grad()
def attention_based_maps(backbone: Backbone, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The arm's own attention read-outs (not yet image-sized)."""
    layout = backbone.token_layout
    if layout is not None:
        return transformer_maps(backbone, layout, images)
    return spatial_gate_maps(backbone, images)


def explain_maps(
    backbone: Backbone, images: torch.Tensor, targets: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """Named maps (B, H, W) for images (B, C, H, W), each image-sized, finite and in [0, 1].

    `targets`: the class Grad-CAM explains per image; None explains the predicted class.
    The model's train/eval flags are restored and no parameter gradients are left behind.
    """
    size = tuple(images.shape[-2:])
    with torch.inference_mode(False):  # callers may hold inference tensors (Lightning hooks)
        images = images.detach().clone()
    cam, _ = grad_cam(backbone, images, targets)
    maps = {"gradcam": cam, **attention_based_maps(backbone, images)}
    return {name: image_sized(m, size).cpu() for name, m in maps.items()}


def main_map_names(names: list[str]) -> list[str]:
    """The maps a cross-arm comparison shows: Grad-CAM, rollout, the deepest CBAM stage."""
    main = [n for n in ("gradcam", "rollout") if n in names]
    cbam = sorted(n for n in names if n.startswith("cbam_"))
    return main + cbam[-1:]

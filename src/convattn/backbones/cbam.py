"""CNN + attention arm: the cnn arm's timm ResNet with an attention module in each residual block.

timm's ResNet blocks apply `block.se` (built from `block_args["attn_layer"]`) to the residual
branch after the last BatchNorm. Which module (`attn_layer`) and which stages get one
(`attn_stages`) are the ablation axes; blocks outside `attn_stages` get `se=None`.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
from timm.layers.cbam import LightSpatialAttn, SpatialAttn

from convattn.backbones.base import Backbone
from convattn.backbones.capture import eval_mode, record
from convattn.backbones.cnn import CNN_PRESETS, create_timm_cnn, is_resnet
from convattn.backbones.registry import register_arm
from convattn.errors import ConvattnError

# CBAM's reduced MLP adds ~C^2/8 per block against ~18 C^2 for its convs: cnn widths keep
# the parameter count within ~1 % of the cnn arm.
CBAM_PRESETS = {size: dict(kwargs) for size, kwargs in CNN_PRESETS.items()}

# Channel + spatial (cbam, lcbam = timm's lighter variant) or channel-only (se, eca) gates.
ATTN_LAYERS = ("cbam", "lcbam", "se", "eca", "none")
STAGES = (1, 2, 3, 4)


class CbamBackbone(Backbone):
    """A timm ResNet with attention; `attention_maps` gives the CBAM spatial gates."""

    arm = "cbam"

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{"layer2.1.se.spatial": B x H x W}` per CBAM module; {} for se / eca / none."""
        spatial = {
            n: m
            for n, m in self.model.named_modules()
            if isinstance(m, (SpatialAttn, LightSpatialAttn))
        }
        if not spatial:
            return {}
        # The gate's output is sigmoid(BN(conv([mean_c x; max_c x]))) of shape B x 1 x H x W.
        targets = {n: m.gate for n, m in spatial.items()}
        with eval_mode(self.model), record(targets, transform=lambda t: t.squeeze(1)) as maps:
            self.model.forward_features(x)
        return {n: maps[n] for n in targets}


def check_attn_args(attn_layer: str, attn_stages: Sequence[int]) -> tuple[int, ...]:
    """Validate the two ablation axes; returns the stages as a tuple of ints."""
    if attn_layer not in ATTN_LAYERS:
        raise ConvattnError(
            f"model.attn_layer={attn_layer!r} is not an attention type of the cbam arm; valid: "
            f"{', '.join(ATTN_LAYERS)} (cbam/lcbam gate channels and space, se/eca only "
            "channels, none is the plain cnn arm)."
        )
    stages = tuple(int(s) for s in attn_stages)
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ConvattnError(
            f"model.attn_stages={list(attn_stages)!r} names stage(s) {bad} that do not exist; "
            f"a ResNet has stages {', '.join(map(str, STAGES))}, e.g. attn_stages=[3,4]."
        )
    return stages


@register_arm("cbam", CBAM_PRESETS)
def cbam(
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    attn_layer: str = "cbam",
    attn_stages: Sequence[int] = STAGES,
    name: str = "resnet18",
    channels: tuple[int, ...] | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> CbamBackbone:
    """CNN + attention arm: `attn_layer` after the convs of each block in `attn_stages`."""
    stages = check_attn_args(attn_layer, attn_stages)
    if timm.is_model(name) and not is_resnet(name):  # unknown names: create_timm_cnn says so
        raise ConvattnError(
            f"model.name={name!r} is not a timm ResNet; the cbam arm inserts attention into "
            "ResNet blocks, so use a ResNet such as resnet18 or resnet34."
        )
    model = create_timm_cnn(
        name,
        in_chans=in_chans,
        num_classes=num_classes,
        img_size=img_size,
        channels=channels,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        block_args=None if attn_layer == "none" else {"attn_layer": attn_layer},
    )
    # timm builds the same module in every block; drop it where the ablation says so.
    for stage in STAGES:
        if stage not in stages:
            for block in getattr(model, f"layer{stage}"):
                block.se = None
    return CbamBackbone(model)

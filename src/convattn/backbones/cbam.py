"""CNN + attention arm: the cnn arm's timm ResNet with an attention module in each residual block.

timm's ResNet blocks apply `block.se` (built from `block_args["attn_layer"]`) to the residual
branch after the last BatchNorm. Which module (`attn_layer`) and which stages get one
(`attn_stages`) are the ablation axes; blocks outside `attn_stages` get `se=None`.

The CBAM gates are timm's modules and parameters (state_dict keys unchanged) with a leaner
`forward` of the same math: see `lean_cbam`.
"""

from __future__ import annotations

from collections.abc import Sequence

import timm
import torch
import torch.nn.functional as F
from timm.layers.cbam import ChannelAttn, LightChannelAttn, LightSpatialAttn, SpatialAttn
from torch import nn

from convattn.backbones.base import Backbone
from convattn.backbones.capture import eval_mode, record
from convattn.backbones.cnn import create_timm_cnn, is_resnet
from convattn.backbones.options import STAGES, check_attn_args
from convattn.backbones.registry import register_arm
from convattn.errors import ConvattnError

# Lean forwards of timm's CBAM gates: the same values, faster training. Where timm's time went
# in eager mode (tiny preset, CPU, the cbam arm's step ~1.6x the cnn arm's; now ~1.3x):
# - `amax`'s backward: an equality mask, its sum (a bool -> int64 copy of the whole feature
#   map), a division and a product, for each of the two maxima. A max that returns its indices
#   (max-pool, `max(dim)`) backpropagates by one scatter. Only at ties do the two differ: amax
#   splits the gradient among the tied elements, these give it to one (as max-pooling and the
#   CBAM paper's code do); both are gradients of the same function. Under torch.compile,
#   inductor fuses amax's backward into a few loops and amax is the faster one, so it is kept
#   there (and without autograd, where only its cheaper forward runs).
# - `mean`'s backward divides the whole expanded gradient; a sum scaled afterwards (the same
#   value: `mean` is that sum divided) passes the gradient on as an expanded view.
# - the 7x7 conv of the spatial gate: see `_channels_last`.
# - the channel MLP, run as 1x1 convs twice (avg and max): here two matmuls, once.


def _mean_hw(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the spatial mean."""
    return x.sum((2, 3)) / (x.shape[2] * x.shape[3])


def _mean_c(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W): the mean over channels."""
    return x.sum(1, keepdim=True) / x.shape[1]


def _amax_is_faster(x: torch.Tensor) -> bool:
    """Under torch.compile (inductor fuses amax's backward) or without autograd (its forward is
    the cheaper one); in eager training an indexed max, for its cheaper backward."""
    return torch.compiler.is_compiling() or not (torch.is_grad_enabled() and x.requires_grad)


def _max_hw(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the spatial max."""
    if _amax_is_faster(x):
        return x.amax((2, 3))
    return F.adaptive_max_pool2d(x, 1).flatten(1)


def _max_c(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 1, H, W): the max over channels."""
    if _amax_is_faster(x):
        return x.amax(1, keepdim=True)
    return x.max(1, keepdim=True).values


def _mlp(attn: ChannelAttn, v: torch.Tensor) -> torch.Tensor:
    """timm's fc2(act(fc1(.))) on (N, C) vectors: its 1x1 convs on a 1x1 map, as two matmuls."""
    h = attn.act(F.linear(v, attn.fc1.weight.flatten(1), attn.fc1.bias))
    return F.linear(h, attn.fc2.weight.flatten(1), attn.fc2.bias)


class LeanChannelAttn(ChannelAttn):
    """timm's CBAM channel gate x * σ(MLP(avg_hw x) + MLP(max_hw x)), one MLP call for both."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        pooled = torch.cat([_mean_hw(x), _max_hw(x)])  # 2B x C
        logits = _mlp(self, pooled).view(2, b, c).sum(0)
        return x * self.gate(logits).view(b, c, 1, 1)


class LeanLightChannelAttn(LightChannelAttn):
    """timm's light channel gate x * σ(MLP((avg_hw x + max_hw x) / 2))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        pooled = 0.5 * _mean_hw(x) + 0.5 * _max_hw(x)
        return x * torch.sigmoid(_mlp(self, pooled)).view(b, c, 1, 1)


def _channels_last(maps: torch.Tensor) -> torch.Tensor:
    """The (B, n, H, W) input of the spatial gate's conv, in channels-last strides.

    oneDNN's backward of a 7x7 conv with 1 output channel and n = 1 or 2 input channels is ~3-4x
    faster in that layout than on timm's NCHW maps; at 32x32 it cost more than the block's two
    3x3 convs. For n = 1 both layouts are "contiguous" to torch, so the strides are set by a
    permuted view; under torch.compile, where inductor picks the layout itself (and such views
    trip it up with dynamic shapes), the maps are left as they are.
    """
    if maps.shape[1] > 1:
        return maps.contiguous(memory_format=torch.channels_last)
    if torch.compiler.is_compiling():
        return maps
    return maps.squeeze(1).unsqueeze(-1).permute(0, 3, 1, 2)


class LeanSpatialAttn(SpatialAttn):
    """timm's CBAM spatial gate x * σ(BN(conv7x7([mean_c x; max_c x])))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([_mean_c(x), _max_c(x)], dim=1)
        return x * self.gate(self.conv(_channels_last(maps)))


class LeanLightSpatialAttn(LightSpatialAttn):
    """timm's light spatial gate x * σ(BN(conv7x7((mean_c x + max_c x) / 2)))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = 0.5 * _mean_c(x) + 0.5 * _max_c(x)
        return x * self.gate(self.conv(_channels_last(maps)))


_LEAN = {
    ChannelAttn: LeanChannelAttn,
    LightChannelAttn: LeanLightChannelAttn,
    SpatialAttn: LeanSpatialAttn,
    LightSpatialAttn: LeanLightSpatialAttn,
}


def lean_cbam(model: nn.Module) -> nn.Module:
    """Give timm's CBAM gates in `model` the lean `forward` of their subclass above, in place.

    Only the class changes: submodules, parameters and state_dict keys stay timm's, so
    checkpoints load either way.
    """
    for m in model.modules():
        lean = _LEAN.get(type(m))
        if lean is not None:
            m.__class__ = lean
    return model


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


@register_arm("cbam")
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
    return CbamBackbone(lean_cbam(model))

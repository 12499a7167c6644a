"""Conv stem + transformer arm: early convolutions (Xiao et al. 2021) feeding a timm ViT.

The stem is timm's `ConvStem` (stride-2 3x3 conv-BN-ReLU layers, the last one a plain conv),
wrapped in timm's `HybridEmbed` whose 1x1 projection maps it to `embed_dim`. The stem has
log2(patch_size) layers, so its total stride equals the vit arm's patch size and both arms
see the same number of tokens at the same preset: only the patchify step differs.
"""

from __future__ import annotations

import functools

from timm.layers import HybridEmbed
from timm.models.vision_transformer_hybrid import ConvStem

from convattn.backbones.registry import register_arm
from convattn.backbones.vit import VIT_PRESETS, TransformerBackbone, build_vit, check_patch_size
from convattn.errors import ConvattnError

# Same transformer as the vit arm; the stem (~2-3 % of the parameters) replaces the patchify conv.
HYBRID_PRESETS = {
    size: {**kwargs, "stem_channels": kwargs["embed_dim"] // 2}
    for size, kwargs in VIT_PRESETS.items()
}


class HybridBackbone(TransformerBackbone):
    arm = "hybrid"


def stem_depth(patch_size: int, img_size: int) -> int:
    """Number of stride-2 stem layers whose total stride is `patch_size` (a power of two)."""
    if patch_size < 2 or patch_size & (patch_size - 1):
        valid = [2**k for k in range(1, 6) if img_size % 2**k == 0]
        raise ConvattnError(
            f"model.patch_size={patch_size} is not a power of two, but the hybrid arm's conv "
            f"stem is a stack of stride-2 layers, so its total stride (the patch size) must be "
            f"one; valid patch sizes for {img_size}x{img_size} images: "
            f"{', '.join(map(str, valid))}."
        )
    check_patch_size(patch_size, img_size, note=" (the hybrid stem's total stride)")
    return patch_size.bit_length() - 1


def conv_stem(in_chans: int, depth: int, channels: int) -> ConvStem:
    """`depth` stride-2 3x3 convs widening to `channels` (halving backwards, timm's default)."""
    if channels >> (depth - 1) < 1:
        raise ConvattnError(
            f"model.stem_channels={channels} is too narrow for a {depth}-layer stem: widths "
            f"halve towards the input, so use at least {2 ** (depth - 1)}."
        )
    return ConvStem(in_chans=in_chans, depth=depth, channels=channels, stride=(2,) * depth)


@register_arm("hybrid", HYBRID_PRESETS)
def hybrid(
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    patch_size: int = 4,
    stem_channels: int = 48,
    embed_dim: int = 96,
    depth: int = 6,
    num_heads: int = 3,
    mlp_ratio: float = 4.0,
    global_pool: str = "token",
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> HybridBackbone:
    """Conv stem + transformer arm; `patch_size` is the stem's total stride."""
    stem = conv_stem(in_chans, stem_depth(patch_size, img_size), stem_channels)
    model = build_vit(
        in_chans=in_chans,
        num_classes=num_classes,
        img_size=img_size,
        # HybridEmbed's own patch size: a 1x1 projection on the stem's feature map.
        patch_size=1,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        global_pool=global_pool,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        embed_layer=functools.partial(HybridEmbed, backbone=stem),
    )
    return HybridBackbone(model)

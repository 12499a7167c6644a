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

from convattn.backbones.options import stem_depth
from convattn.backbones.registry import register_arm
from convattn.backbones.vit import TransformerBackbone, build_vit


class HybridBackbone(TransformerBackbone):
    arm = "hybrid"


def conv_stem(in_chans: int, depth: int, channels: int) -> ConvStem:
    """`depth` stride-2 3x3 convs widening to `channels` (halving backwards, timm's default)."""
    return ConvStem(in_chans=in_chans, depth=depth, channels=channels, stride=(2,) * depth)


@register_arm("hybrid")
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

"""ResNet stages + transformer arm: the cnn arm's first stages tokenize, transformer blocks mix.

A stronger conv front end than the hybrid arm's stem: where the hybrid arm swaps the patchify
conv for a few stride-2 convs (Xiao et al. 2021), this arm keeps the cnn arm's first
`stem_stages` residual stages (the same timm ResNet, widths and small-image stem), so tokens
carry the local features a CNN would, and spends the rest of the parameter budget on fewer
transformer blocks over them. Like CCT (Hassani et al. 2021), it pools the tokens (here their
mean, timm's `global_pool="avg"`) instead of reading a class token.

    image (B, C, 32, 32) -> ResNet stem + stages 1..3 (B, 64, 8, 8) at the tiny preset
          -> 1x1 projection, 64 tokens (B, 64, embed_dim) -> `depth` blocks -> token mean -> head
"""

from __future__ import annotations

import functools

import timm
from timm.layers import HybridEmbed
from torch import nn

from convattn.backbones.cnn import SMALL_IMAGE_MAX, small_image_stem
from convattn.backbones.registry import register_arm
from convattn.backbones.vit import TransformerBackbone, build_vit


class ResVitBackbone(TransformerBackbone):
    arm = "resvit"


def resnet_stages(
    in_chans: int, img_size: int, channels: tuple[int, ...], stem_stages: int
) -> nn.Module:
    """The cnn arm's timm ResNet up to stage `stem_stages`, returning that stage's feature map."""
    stem = timm.create_model(
        "resnet18",
        pretrained=False,
        in_chans=in_chans,
        features_only=True,
        out_indices=(stem_stages,),
        channels=tuple(channels),
        stem_type="deep",
        stem_width=channels[0] // 2,
    )
    if img_size < SMALL_IMAGE_MAX:
        small_image_stem(stem, in_chans)
    return stem


@register_arm("resvit")
def resvit(
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    channels: tuple[int, ...] = (16, 32, 64, 128),
    stem_stages: int = 3,
    embed_dim: int = 96,
    depth: int = 4,
    num_heads: int = 3,
    mlp_ratio: float = 4.0,
    global_pool: str = "avg",
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> ResVitBackbone:
    """ResNet stages 1..`stem_stages` as the tokenizer, then `depth` transformer blocks."""
    stem = resnet_stages(in_chans, img_size, channels, stem_stages)
    model = build_vit(
        in_chans=in_chans,
        num_classes=num_classes,
        img_size=img_size,
        patch_size=1,  # HybridEmbed's 1x1 projection of the stage's feature map
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        global_pool=global_pool,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        embed_layer=functools.partial(HybridEmbed, backbone=stem),
    )
    return ResVitBackbone(model)

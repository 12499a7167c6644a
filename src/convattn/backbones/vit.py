"""Attention-only arm: timm's VisionTransformer with its patchify embedding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from timm.layers import Attention, PatchEmbed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from convattn.backbones.base import Backbone, TokenLayout
from convattn.backbones.capture import eval_mode, record, unfused_attention
from convattn.backbones.registry import register_arm


class TransformerBackbone(Backbone):
    """A timm VisionTransformer; `attention_maps` gives each block's softmax probabilities."""

    arm = "vit"

    @property
    def token_layout(self) -> TokenLayout:
        rows, cols = (int(s) for s in self.model.patch_embed.grid_size)
        return TokenLayout(
            grid=(rows, cols),
            prefix=int(self.model.num_prefix_tokens),
            pooled_by_prefix=self.model.global_pool == "token",
        )

    @property
    def num_tokens(self) -> int:
        """Sequence length seen by every block: patches plus the cls token when present."""
        return self.token_layout.num_tokens

    def gradcam_layer(self) -> nn.Module | None:
        """Pooling by class token: the head reads only the class token of the final norm,
        which is per token, so the patch tokens there get exactly zero gradient; read the last
        block's input tokens instead (after its `norm1`), the usual Grad-CAM layer for ViTs,
        where the last attention still mixes them into the class token. Pooling by average:
        the output of `forward_features` (the final norm)."""
        return self.model.blocks[-1].norm1 if self.token_layout.pooled_by_prefix else None

    def feature_map(self, activation: torch.Tensor) -> torch.Tensor:
        """(B, T, D) tokens -> (B, D, rows, cols) patch tokens, prefix tokens dropped."""
        layout = self.token_layout
        patches = activation[:, layout.prefix :]
        return patches.transpose(1, 2).reshape(activation.shape[0], -1, *layout.grid)

    def no_weight_decay(self) -> set[str]:
        """timm convention (read by `timm.optim.create_optimizer_v2`): pos_embed, cls_token."""
        params = {name for name, _ in self.named_parameters()}
        return {f"model.{n}" for n in self.model.no_weight_decay()} & params

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{"blocks.i.attn": B x heads x T x T}`; T counts the cls token when present."""
        attns = {n: m for n, m in self.model.named_modules() if isinstance(m, Attention)}
        # In timm's explicit path the input of `attn_drop` is exactly softmax(q k^T * scale).
        targets = {n: m.attn_drop for n, m in attns.items()}
        with (
            eval_mode(self.model),
            unfused_attention(list(attns.values())),
            record(targets, what="input") as maps,
        ):
            self.model.forward_features(x)
        return {n: maps[n] for n in targets}


def build_vit(
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    patch_size: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float,
    global_pool: str,
    drop_rate: float,
    drop_path_rate: float,
    embed_layer: Callable[..., Any] = PatchEmbed,
) -> VisionTransformer:
    """A randomly initialised timm VisionTransformer (its arguments checked by the arm's
    options, `convattn.backbones.options`)."""
    return VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        global_pool=global_pool,
        class_token=global_pool == "token",
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        embed_layer=embed_layer,
    )


@register_arm("vit")
def vit(
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    patch_size: int = 4,
    embed_dim: int = 96,
    depth: int = 6,
    num_heads: int = 3,
    mlp_ratio: float = 4.0,
    global_pool: str = "token",
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> TransformerBackbone:
    """Attention-only arm: non-overlapping patchify conv, then `depth` transformer blocks."""
    model = build_vit(
        in_chans=in_chans,
        num_classes=num_classes,
        img_size=img_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=mlp_ratio,
        global_pool=global_pool,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
    )
    return TransformerBackbone(model)

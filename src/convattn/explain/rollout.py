"""Attention rollout (Abnar & Zuidema 2020) and per-head maps from `Backbone.attention_maps`.

Everything here works on token maps: (B, N) over the N patch tokens, before reshaping to the
grid. The class token row is read when the model pools with it (`global_pool="token"`);
otherwise the mean over patch-token rows, which is what average pooling feeds to the head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def attention_rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """Joint attention from the output tokens to the input tokens, (B, T, T).

    `attentions` are each layer's softmax probabilities (B, heads, T, T) in forward order. Per
    block: average the heads, add the identity for the residual path, re-normalise the rows,
    then multiply through the layers (last block on the left).
    """
    if not attentions:
        raise ValueError("attention_rollout needs the attention of at least one block")
    rollout = None
    for attn in attentions:
        a = attn.float().mean(dim=1)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout


def read_token_map(attn: torch.Tensor, prefix: int, cls_row: bool) -> torch.Tensor:
    """How much each patch token feeds the pooled output: (..., T, T) -> (..., N).

    `cls_row`: read row 0 (the class token). Otherwise average the patch-token rows, since
    average pooling weighs every patch token's output equally.
    """
    cols = attn[..., prefix:]
    if cls_row:
        return cols[..., 0, :]
    return cols[..., prefix:, :].mean(dim=-2)


def rollout_token_map(
    attentions: Sequence[torch.Tensor], prefix: int, cls_row: bool
) -> torch.Tensor:
    """Rollout over all layers read at the pooled output: (B, N)."""
    return read_token_map(attention_rollout(attentions), prefix, cls_row)


def head_token_maps(attn: torch.Tensor, prefix: int, cls_row: bool) -> torch.Tensor:
    """One block's attention per head, read like the rollout: (B, heads, T, T) -> (B, heads, N)."""
    return read_token_map(attn.float(), prefix, cls_row)

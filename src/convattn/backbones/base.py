"""What every arm exposes, so the classifier, reports and explainers never special-case an arm."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TokenLayout:
    """How a transformer's token sequence maps onto the image.

    `grid`: (rows, cols) of patch tokens; `prefix`: tokens before them (a class token);
    `pooled_by_prefix`: whether the head reads the class token (else the patch-token mean).
    """

    grid: tuple[int, int]
    prefix: int
    pooled_by_prefix: bool

    @property
    def num_tokens(self) -> int:
        return self.prefix + self.grid[0] * self.grid[1]


class Backbone(nn.Module):
    """A timm model plus what explainers need to read it.

    Subclasses wrap one timm model in `self.model`. `forward` returns logits;
    `forward_features` the unpooled features; `forward_head` logits from those. Explainers use
    `gradcam_layer` and `feature_map` (Grad-CAM), `token_layout` (token models) and
    `attention_maps` (each arm's own attention read-outs).
    """

    arm: str = "base"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def num_features(self) -> int:
        """Width of the pooled feature vector that feeds the classifier head."""
        return int(self.model.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)

    def no_weight_decay(self) -> set[str]:
        """Parameter names to keep out of weight decay besides norms and biases (timm's
        convention): position embeddings and class tokens of token models."""
        return set()

    @property
    def token_layout(self) -> TokenLayout | None:
        """The token grid of a transformer arm; None for arms with a feature map."""
        return None

    def gradcam_layer(self) -> nn.Module | None:
        """The module whose output Grad-CAM reads; None: the output of `forward_features`."""
        return None

    def feature_map(self, activation: torch.Tensor) -> torch.Tensor:
        """The Grad-CAM activation (or its gradient) as a (B, C, h, w) feature map."""
        return activation

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named per-layer attention maps for a batch `x`; empty for arms without attention.

        Token models give (B, heads, T, T) softmax probabilities (see `token_layout`);
        convolutional arms give (B, H, W) spatial gates.
        """
        return {}

"""What every arm exposes, so the classifier, reports and explainers never special-case an arm."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """A timm model plus the hooks to read what it attends to.

    Subclasses wrap one timm model in `self.model` and override `attention_maps`.
    `forward` returns logits; `forward_features` the unpooled features.
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

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named per-layer attention maps for a batch `x`; empty for arms without attention."""
        return {}

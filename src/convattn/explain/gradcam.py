"""Grad-CAM (Selvaraju et al. 2017) on the last feature map of any arm, with autograd hooks.

Each arm says where to read (`Backbone.gradcam_layer`, None meaning the output of
`forward_features`) and how its activation becomes a feature map (`Backbone.feature_map`).
The activation is read by a forward hook and its gradient by `torch.autograd.grad`, so no
`.grad` is ever written to the parameters: Grad-CAM can run in the middle of training without
leaving gradients behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from convattn.backbones.base import Backbone
from convattn.backbones.capture import eval_mode


@contextmanager
def capture_output(layer: nn.Module | None) -> Iterator[dict[str, torch.Tensor]]:
    """Keep `layer`'s output, graph attached, in the yielded dict as "act"; unhooked on exit."""
    store: dict[str, torch.Tensor] = {}
    if layer is None:
        yield store
        return

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        store["act"] = output

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def grad_cam(
    backbone: Backbone, images: torch.Tensor, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw Grad-CAM (B, h, w) at the feature-map resolution, and the logits (B, classes).

    `targets`: the class to explain per image; None explains the predicted class. The model
    runs in eval mode (flags restored after) with gradients on, even inside `no_grad` or
    `inference_mode` (e.g. a validation hook).
    """
    layer = backbone.gradcam_layer()
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        eval_mode(backbone),
        capture_output(layer) as store,
    ):
        # A fresh leaf that requires grad: the graph exists even with frozen parameters.
        x = images.detach().clone().requires_grad_(True)
        feats = backbone.forward_features(x)
        logits = backbone.forward_head(feats)
        act = store.get("act", feats)
        if targets is None:
            targets = logits.argmax(dim=1)
        targets = targets.to(logits.device).long().clone()  # a normal tensor, not an inference one
        # Images are independent in eval mode, so one backward of the summed scores suffices.
        score = logits.gather(1, targets[:, None]).sum()
        (grad,) = torch.autograd.grad(score, act)
        act, grad = backbone.feature_map(act.detach()), backbone.feature_map(grad)
        weights = grad.float().mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        cam = F.relu((weights * act.float()).sum(dim=1))
    return cam, logits.detach()

"""Grad-CAM (Selvaraju et al. 2017) on the last feature map of any arm, with autograd hooks.

The activation is read by a forward hook (or is the output of `forward_features`) and its
gradient by `torch.autograd.grad`, so no `.grad` is ever written to the parameters: Grad-CAM
can run in the middle of training without leaving gradients behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from convattn.backbones.capture import eval_mode


def is_transformer(backbone: nn.Module) -> bool:
    """A timm ViT inside (the vit and hybrid arms): tokens instead of a feature map."""
    model = getattr(backbone, "model", None)
    return hasattr(model, "blocks") and hasattr(model, "patch_embed")


def token_grid(backbone: nn.Module) -> tuple[int, int]:
    """(rows, cols) of the patch-token grid of a ViT backbone."""
    return tuple(int(s) for s in backbone.model.patch_embed.grid_size)


def gradcam_layer(backbone: nn.Module) -> nn.Module | None:
    """The module whose output Grad-CAM reads; None means the output of `forward_features`.

    CNNs: `forward_features` ends at the last stage. ViTs pooling by average: the final norm
    output (`forward_features`). ViTs pooling by class token: the head reads only the class
    token of the final norm, which is per token, so the patch tokens there get exactly zero
    gradient; read the last block's input tokens instead (after its `norm1`), the usual
    Grad-CAM layer for ViTs, where the last attention still mixes them into the class token.
    """
    if is_transformer(backbone) and backbone.model.global_pool == "token":
        return backbone.model.blocks[-1].norm1
    return None


def to_feature_map(backbone: nn.Module, act: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) from a CNN feature map, or from ViT tokens (B, T, D) without prefix tokens."""
    if act.ndim == 4:
        return act
    rows, cols = token_grid(backbone)
    patches = act[:, backbone.model.num_prefix_tokens :]
    return patches.transpose(1, 2).reshape(act.shape[0], act.shape[2], rows, cols)


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
    backbone: nn.Module, images: torch.Tensor, targets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw Grad-CAM (B, h, w) at the feature-map resolution, and the logits (B, classes).

    `targets`: the class to explain per image; None explains the predicted class. The model
    runs in eval mode (flags restored after) with gradients on, even inside `no_grad` or
    `inference_mode` (e.g. a validation hook).
    """
    layer = gradcam_layer(backbone)
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
        act, grad = to_feature_map(backbone, act.detach()), to_feature_map(backbone, grad)
        weights = grad.float().mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        cam = F.relu((weights * act.float()).sum(dim=1))
    return cam, logits.detach()

"""Read intermediate tensors out of timm modules with forward hooks, leaving no state behind.

Each helper is a context manager that restores what it changed, so that a call to
`Backbone.attention_maps` never alters a later normal forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Switch `model` to eval mode, then restore every submodule's own `training` flag.

    Maps are read in eval mode so that BatchNorm running stats are not updated and
    dropout / stochastic depth do not make them random.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was_training in flags:
            m.training = was_training


@contextmanager
def unfused_attention(modules: list[nn.Module]) -> Iterator[None]:
    """Route timm attention through its explicit softmax path (`fused_attn=False`), then restore.

    The fused path (`F.scaled_dot_product_attention`) never materialises the probabilities;
    the explicit path passes them through `attn_drop`, where `record` can read them.
    """
    saved = [(m, m.fused_attn) for m in modules]
    for m in modules:
        m.fused_attn = False
    try:
        yield
    finally:
        for m, fused in saved:
            m.fused_attn = fused


@contextmanager
def record(
    targets: dict[str, nn.Module],
    what: Literal["input", "output"] = "output",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Hook each named module; the yielded dict fills with its first input or its output.

    Hooks are removed on exit, even if the forward raises.
    """
    store: dict[str, torch.Tensor] = {}

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            t = args[0] if what == "input" else output
            # A copy: downstream code may modify the tensor in place (ResNet's `x += shortcut`).
            t = t.detach().clone()
            store[name] = transform(t) if transform is not None else t

        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in targets.items()]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()

"""Conv-only arm: any timm CNN, randomly initialised, with a small-image stem for tiny inputs."""

from __future__ import annotations

from typing import Any

import timm
from torch import nn

from convattn.backbones.base import Backbone
from convattn.backbones.registry import register_arm
from convattn.errors import ConvattnError

# Below this size a 7x7/2 conv + max-pool throws away most of the image before the first stage.
SMALL_IMAGE_MAX = 64


def is_resnet(name: str) -> bool:
    return timm.models.model_entrypoint(name).__module__.endswith(".resnet")


def small_image_stem(model: nn.Module, in_chans: int) -> None:
    """Replace the stem by one 3x3 stride-1 conv and drop the stem max-pool (CIFAR-style)."""
    if hasattr(model, "conv1") and hasattr(model, "bn1"):  # timm ResNet family
        model.conv1 = nn.Conv2d(in_chans, model.bn1.num_features, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
        return
    # Any other timm CNN: its registered first conv keeps its widths but loses its stride.
    name = model.pretrained_cfg["first_conv"]
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, attr)
    setattr(parent, attr, nn.Conv2d(in_chans, old.out_channels, 3, 1, 1, bias=old.bias is not None))


def create_timm_cnn(
    name: str,
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    channels: tuple[int, ...] | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    block_args: dict[str, Any] | None = None,
) -> nn.Module:
    """A randomly initialised timm CNN; `channels` (ResNets only) sets the four stage widths."""
    if not timm.is_model(name):
        raise ConvattnError(
            f"model.name={name!r} is not a timm model; list CNNs with "
            "`python -c \"import timm; print(timm.list_models('resnet*'))\"`."
        )
    kwargs: dict[str, Any] = {}
    if channels is not None:
        if not is_resnet(name):
            raise ConvattnError(
                f"model.channels (set by model.size presets) scales ResNet stage widths, but "
                f"{name!r} is not a timm ResNet; use model.size=null to train it at its timm width."
            )
        # A 'deep' stem of width c/2 makes the stem output c channels instead of a fixed 64.
        kwargs = {"channels": tuple(channels), "stem_type": "deep", "stem_width": channels[0] // 2}
    if block_args:
        kwargs["block_args"] = dict(block_args)
    model = timm.create_model(
        name,
        pretrained=False,
        in_chans=in_chans,
        num_classes=num_classes,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        **kwargs,
    )
    if img_size < SMALL_IMAGE_MAX:
        small_image_stem(model, in_chans)
    return model


class CNNBackbone(Backbone):
    arm = "cnn"


@register_arm("cnn")
def cnn(
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    name: str = "resnet18",
    channels: tuple[int, ...] | None = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> CNNBackbone:
    """Conv-only arm."""
    model = create_timm_cnn(
        name,
        in_chans=in_chans,
        num_classes=num_classes,
        img_size=img_size,
        channels=channels,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
    )
    return CNNBackbone(model)

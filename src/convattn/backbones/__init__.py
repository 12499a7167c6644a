"""The four ablation arms behind one interface (see `Backbone`)."""

from convattn.backbones import cbam, cnn, hybrid, vit  # noqa: F401  (registers the arms)
from convattn.backbones.base import Backbone
from convattn.backbones.registry import (
    build_backbone,
    create_backbone,
    list_arms,
    list_presets,
    preset_kwargs,
)

__all__ = [
    "Backbone",
    "build_backbone",
    "create_backbone",
    "list_arms",
    "list_presets",
    "preset_kwargs",
]

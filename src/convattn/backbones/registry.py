"""A timm-style registry of arms: `create_backbone("vit", size="tiny", ...)`.

An arm is two halves: its options (`convattn.backbones.options`: types, presets, rules; no
torch) and its builder, registered here under the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from convattn.backbones.base import Backbone
from convattn.backbones.options import options_of
from convattn.errors import ConvattnError, check_choice
from convattn.utils.config_tree import TARGET, find_targets
from convattn.utils.packages import import_all_modules
from convattn.utils.typed import typed

_ARMS: dict[str, Callable[..., Backbone]] = {}


def load_arms() -> None:
    """Import every module of the package once, so that every arm has registered itself."""
    import_all_modules("convattn.backbones")


def register_arm(name: str) -> Callable:
    """Register a builder `fn(in_chans, num_classes, img_size, **arm_kwargs)` for the arm whose
    options are declared as `name` in `convattn.backbones.options`."""
    options_of(name)  # an arm without declared options cannot be checked before it is built

    def wrap(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        _ARMS[name] = fn
        return fn

    return wrap


def list_arms() -> list[str]:
    """The registered arms, sorted."""
    load_arms()
    return sorted(_ARMS)


def arm_builder(arm: str) -> Callable[..., Backbone]:
    """The builder registered as `arm` (its signature names the arm's options)."""
    check_choice("model.arm", arm, list_arms())
    return _ARMS[arm]


def list_presets(arm: str) -> list[str]:
    """The size presets of `arm`, in their registered order."""
    check_choice("model.arm", arm, list_arms())
    return list(options_of(arm).PRESETS)


def preset_kwargs(arm: str, size: str | None) -> dict[str, Any]:
    """The constructor kwargs a size preset stands for (empty for size=None)."""
    check_choice("model.arm", arm, list_arms())
    return options_of(arm)(arm=arm, size=size).preset()


MODEL_FACTORY = "convattn.backbones.create_backbone"  # the one `_target_` a model config names


def build_backbone(config: dict[str, Any], **data_shape: Any) -> Backbone:
    """A backbone from a `conf/model` config: `create_backbone(**config, **data_shape)`.

    The config is data, never code: its `_target_` must be convattn's factory and nothing in it
    may name another `_target_`, so a checkpoint's saved config cannot run anything else.
    """
    config = dict(config)
    target = config.pop(TARGET, MODEL_FACTORY)
    nested = find_targets(config)
    if target != MODEL_FACTORY or nested:
        raise ConvattnError(
            f"The model config names _target_={target!r}"
            + (f" and nested _target_ keys at {', '.join(nested)}" if nested else "")
            + f"; a convattn model config must use _target_: {MODEL_FACTORY} with plain values"
            " only."
        )
    return create_backbone(**config, **data_shape)


def create_backbone(
    arm: str,
    *,
    in_chans: int,
    num_classes: int,
    img_size: int,
    size: str | None = "tiny",
    **kwargs: Any,
) -> Backbone:
    """Build an arm at a size preset; explicit `kwargs` override the preset's values. The
    options meet the same types and rules as a config before the heavy imports
    (`convattn.backbones.options`)."""
    check_choice("model.arm", arm, list_arms())
    options = typed(options_of(arm), {"arm": arm, "size": size, **kwargs}, "model")
    arm_kwargs = options.check(img_size)
    return _ARMS[arm](in_chans=in_chans, num_classes=num_classes, img_size=img_size, **arm_kwargs)

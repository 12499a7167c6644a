"""The ablation arms behind one interface (see `Backbone`).

Importing the package is light, so that `convattn.backbones.options` (each arm's option types,
presets and rules) loads without torch. The names below load the arms on first use, all of
them (`registry.load_arms`), so `list_arms()` is always complete.
"""

from typing import Any

__all__ = [
    "Backbone",
    "build_backbone",
    "create_backbone",
    "list_arms",
    "list_presets",
    "preset_kwargs",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from convattn.backbones import registry

    registry.load_arms()
    return getattr(registry, name)

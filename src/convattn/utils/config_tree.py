"""Walk config trees (nested dicts, lists) and say which `_target_`s a config from disk may name.

One walker for every caller: the resume identity, W&B's flat config, the "did you mean" hints,
the report's swept values and the trust checks all see the same dotted paths (`a.b`, `a[0]` for
list items when lists are walked). The allow-list below is the one place that says what a
checkpoint or a run dir's saved config may build; nothing else in it may name a `_target_`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

TARGET = "_target_"


def join(path: str, key: Any) -> str:
    """`path.key` (just `key` at the top)."""
    return f"{path}.{key}" if path else str(key)


def walk(tree: Any, path: str = "", *, lists: bool = False) -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, key, value) of every node below `tree`, parents before their children.

    Dicts are always walked; lists and tuples only with `lists=True` (items are `path[i]`),
    else they are leaves like any other value.
    """
    if isinstance(tree, dict):
        items = [(join(path, key), key, value) for key, value in tree.items()]
    elif lists and isinstance(tree, (list, tuple)):
        items = [(f"{path}[{i}]", i, value) for i, value in enumerate(tree)]
    else:
        return
    for here, key, value in items:
        yield here, key, value
        yield from walk(value, here, lists=lists)


def flatten(tree: Any, prefix: str = "", *, keep_empty: bool = False) -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1} (`prefix.a.b` with a prefix); lists are values.

    An empty dict is dropped, or kept as a value with `keep_empty`; a tree that is not a dict
    is the one value `{prefix: tree}`.
    """
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {
        path: value
        for path, _, value in walk(tree, prefix)
        if not isinstance(value, dict) or (keep_empty and not value)
    }


def find_targets(tree: Any, path: str = "") -> list[str]:
    """Where `_target_` keys occur in a nested dict/list (dotted paths), outermost only."""
    found: list[str] = []
    for here, key, _ in walk(tree, path, lists=True):
        if key == TARGET and not any(here.startswith((f"{f}.", f"{f}[")) for f in found):
            found.append(here)
    return found


# ------------------------------------------------------------ what a config from disk may name
MODEL_FACTORY = "convattn.backbones.create_backbone"
OPTIMIZER_TARGET = re.compile(r"torch\.optim\.[A-Z][A-Za-z0-9]*")
SECTIONS = ("model", "optimizer", "data")


def allowed_target(section: str, target: Any) -> bool:
    """Whether a checkpoint or run dir may name `target` as the `_target_` of its `section`:
    the model convattn's backbone factory, the optimizer a `torch.optim` class, the data a
    registered data module (`convattn.data.registry`). Nothing else, anywhere."""
    if not isinstance(target, str):
        return False
    if section == "model":
        return target == MODEL_FACTORY
    if section == "optimizer":
        return OPTIMIZER_TARGET.fullmatch(target) is not None
    if section == "data":
        from convattn.data.registry import find_dataset  # imports the data modules: lazily

        return find_dataset(target) is not None
    raise ValueError(f"unknown config section {section!r}; one of {', '.join(SECTIONS)}")


def check_section(
    section: str, config: dict[str, Any], path: str = "", default: str | None = None
) -> tuple[bool, list[str]]:
    """One section of a config read from disk: (whether its own `_target_` may be named there,
    where other `_target_` keys sit below it as dotted paths under `path`). A missing
    `_target_` stands for `default`; with no default, leaving it out (or null) is allowed."""
    target = config.get(TARGET, default)
    allowed = (target is None and default is None) or allowed_target(section, target)
    return allowed, find_targets({k: v for k, v in config.items() if k != TARGET}, path)

"""Walk config trees (nested dicts and lists) with dotted paths.

One walker for every caller: the resume identity, W&B's flat config, the "did you mean" hints,
the report's swept values and the `_target_` scan of the trust checks (`convattn.run.load`) all
see the same paths (`a.b`, and `a[0]` for list items when lists are walked).
"""

from __future__ import annotations

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


def target_path(cls: type) -> str:
    """The `_target_` that names `cls` in a config: `module.Class`."""
    return f"{cls.__module__}.{cls.__qualname__}"

"""Typed options: a config group's values checked against its dataclass of options.

Each wing declares the options of what it builds as a dataclass (`backbones/options.py` for
the arms, `data/options.py` for the data modules, `recipe.py`, `run/options.py`) whose
fields carry the types; OmegaConf converts and checks the values against them, as Hydra does
for structured configs. The composed config itself is left as it is: the typed copy only
says what is wrong, one paragraph naming the key, the value and what would be valid.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from convattn.errors import ConvattnError
from convattn.utils.checks import Check, Wrong, shown

OptionsT = TypeVar("OptionsT")

TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def describe(annotation: Any) -> str:
    """What a value of `annotation` looks like, in words: "an integer", "a list of numbers"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [describe(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (", or null" if type(None) in args else "")
    if origin in (list, tuple) or annotation in (list, tuple):
        item = describe(args[0]) if args else "a value"
        return f"a list of {item.removeprefix('an ').removeprefix('a ')}s"
    if origin in (dict, Mapping):
        return "a mapping"
    return TYPE_WORDS.get(annotation, "a value")


def dotted(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def unknown_key(where: str, key: str, known: list[str]) -> ConvattnError:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    hint = (
        f"did you mean {' or '.join(dotted(where, k) for k in close)}?"
        if close
        else f"its options are {', '.join(known)}."
    )
    return ConvattnError(
        f"'{dotted(where, key)}' is not an option of {where or 'the config'}; {hint}"
    )


def typed(
    cls: type[OptionsT], values: Mapping[str, Any], where: str, closed: bool = True
) -> OptionsT:
    """`cls(**values)` with each value converted to its field's type by OmegaConf, or one
    paragraph naming `<where>.<key>`, the value and the type it must have. Keys `cls` does not
    declare are refused when `closed` (with the closest names), else left out."""
    names = [f.name for f in dataclasses.fields(cls)]
    values = dict(values)
    unknown = [k for k in values if k not in names]
    if unknown and closed:
        raise unknown_key(where, unknown[0], names)
    known = {k: values[k] for k in names if k in values}  # declaration order: one answer
    try:
        node = OmegaConf.merge(OmegaConf.structured(cls), known)
    except OmegaConfBaseException as err:
        name = re.split(r"[.\[]", str(getattr(err, "full_key", "") or ""))[0]
        annotation = typing.get_type_hints(cls).get(name)
        must = describe(annotation) if annotation is not None else "of another type"
        raise ConvattnError(
            f"{dotted(where, name)}={shown(known.get(name))} is not valid: it must be {must}."
        ) from None
    return OmegaConf.to_object(node)  # MISSING fields (not set) are left at their defaults


def check_value(key: str, check: Check, value: Any, example: str = "") -> Any:
    """`check(value)`, or one paragraph: `key=value is not valid: it must be ...`."""
    try:
        return check(value)
    except Wrong as wrong:
        hint = f" ({example})" if example else ""
        raise ConvattnError(
            f"{key}{wrong.where}={shown(wrong.value)} is not valid: it must be "
            f"{wrong.expected}{hint}."
        ) from None

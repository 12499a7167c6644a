"""Typed checks for values read from disk: each returns the value or raises `Wrong`, which
says what would have been valid; readers turn that into their one-paragraph error."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

INT_LIMIT = 2**63  # every count convattn writes fits in int64; more is not a count
Check = Callable[[Any], Any]


class Wrong(Exception):
    """A value that is not what a reader expects: `expected` says what would be valid and
    `where` the path below the checked key (e.g. "['test/acc']")."""

    def __init__(self, expected: str, value: Any, where: str = "") -> None:
        super().__init__(expected)
        self.expected, self.value, self.where = expected, value, where


def shown(value: Any, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters: a message names the value, never dumps it
    (repr of an int past Python's 4300-digit limit raises, so it is described instead)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except ValueError:  # an int past the digit limit inside a list or dict
        return f"a {type(value).__name__} holding a huge integer"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def integer(low: int = -INT_LIMIT, high: int = INT_LIMIT - 1) -> Check:
    """An int (never a bool) in [low, high]."""
    top = "2**63)" if high == INT_LIMIT - 1 else f"{high}]"
    expected = "a 64-bit integer" if low == -INT_LIMIT else f"an integer in [{low}, {top}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Wrong(expected, value)
        return value

    return check


def real(
    low: float = -math.inf,
    high: float = math.inf,
    *,
    nan: bool = False,
    inf: bool = False,
    open_low: bool = False,
    open_high: bool = False,
) -> Check:
    """A number (int or float, never a bool) as a float, in [low, high] (ends left out with
    `open_low`, `open_high`); NaN only with `nan`; +-inf only with `inf`, also as the strings
    "inf"/"-inf" that `to_jsonable` writes for them (JSON has no infinity)."""
    bounds = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    expected = "a number" + ("" if math.isinf(low) and math.isinf(high) else f" in {bounds}")
    expected += ", or NaN" if nan else ""

    def check(value: Any) -> float:
        if inf and value in ("inf", "-inf"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Wrong(expected, value)
        try:
            number = float(value)
        except OverflowError:
            raise Wrong(expected + " within the float range", value) from None
        if math.isnan(number):
            if nan:
                return number
            raise Wrong(expected + " (not NaN)", value)
        if math.isinf(number) and inf:
            return number
        above = low < number if open_low else low <= number
        below = number < high if open_high else number <= high
        if not (above and below):
            raise Wrong(expected, value)
        if math.isinf(number):
            raise Wrong(expected + " (finite)", value)
        return number

    return check


def text(choices: tuple[str, ...] | None = None) -> Check:
    """A str (one of `choices` when given)."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or (choices is not None and value not in choices):
            raise Wrong(f"one of {', '.join(choices)}" if choices else "a string", value)
        return value

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Wrong("true or false", value)
    return value


def optional(check: Check) -> Check:
    """`check`, or None (null)."""

    def wrapped(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except Wrong as wrong:
            if wrong.where:  # an item below was wrong, not the value itself
                raise
            raise Wrong(wrong.expected + ", or null", wrong.value) from None

    return wrapped


def mapping(values: Check) -> Check:
    """A dict of str keys to values that pass `values`."""

    def check(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise Wrong("a mapping of names to values", value)
        out = {}
        for key, item in value.items():
            try:
                out[key] = values(item)
            except Wrong as wrong:
                raise Wrong(wrong.expected, wrong.value, f"[{key!r}]{wrong.where}") from None
        return out

    return check


def sequence(items: Check, length: int | None = None) -> Check:
    """A list (or tuple) of `length` items (any length when None) that pass `items`."""

    def check(value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            raise Wrong("a list" + (f" of {length} items" if length is not None else ""), value)
        out = []
        for i, item in enumerate(value):
            try:
                out.append(items(item))
            except Wrong as wrong:
                raise Wrong(wrong.expected, wrong.value, f"[{i}]{wrong.where}") from None
        return out

    return check

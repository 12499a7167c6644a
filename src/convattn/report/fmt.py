"""How numbers read in the report: accuracies in percent, missing values as a dash."""

from __future__ import annotations

import math

DASH = "–"


def pct(x: float) -> str:
    """A fraction in [0, 1] as percent with two decimals (also accuracy differences)."""
    return DASH if math.isnan(x) else f"{100 * x:.2f}"


def num(x: float | None, fmt: str) -> str:
    return DASH if x is None or math.isnan(x) else format(x, fmt)


def fmt_value(value: float | None) -> str:
    """A swept key's value as a reader writes it: 0.001, 0.1, 1, 4."""
    return DASH if value is None else format(value, "g")

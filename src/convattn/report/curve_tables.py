"""The markdown and CSV of one swept key's curves: a table per arm, and the key's summary."""

from __future__ import annotations

import math
from typing import Any

from convattn.report.curves import (
    REACH_MARGIN,
    CurvePoint,
    FractionSummary,
    LineKey,
    LrSummary,
    by_line,
    fraction_summaries,
    is_fraction_key,
    is_lr_key,
    line_label,
    lr_summaries,
)
from convattn.report.fmt import fmt_value, pct
from convattn.report.stats import BASELINE_ARM
from convattn.report.swept import setting_label


def ci_text(p: CurvePoint) -> str:
    return "– (one seed)" if math.isnan(p.ci_low) else f"[{pct(p.ci_low)}, {pct(p.ci_high)}]"


def curve_table(key: str, points: list[CurvePoint]) -> list[str]:
    """One line's points: a row per value of `key`."""
    lines = [
        f"| {key} | n | test acc % (mean ± std) | 95 % CI |",
        "|---:|---:|---:|---|",
    ]
    for p in points:
        lines.append(
            f"| {fmt_value(p.value)} | {p.n} | {pct(p.acc_mean)} ± {pct(p.acc_std)} "
            f"| {ci_text(p)} |"
        )
    return lines


def line_cells(line: LineKey, with_others: bool) -> str:
    """`arm | size | dataset |` (and the other swept keys' values when there are any)."""
    arm, size, dataset, others = line
    cells = f"| {arm} | {size} | {dataset} |"
    return cells + (f" {setting_label(others)} |" if with_others else "")


def lr_table(key: str, summaries: list[LrSummary], with_others: bool) -> list[str]:
    head = "| arm | size | dataset |" + (" other keys |" if with_others else "")
    lines = [
        "### Learning-rate sensitivity",
        "",
        f"{head} best mean test acc % | at {key} | spread (points, max − min over the grid) |",
        "|---|---|---|" + ("---|" if with_others else "") + "---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"{line_cells(s.line, with_others)} {pct(s.best_acc)} | {fmt_value(s.best_lr)} "
            f"| {pct(s.spread)} |"
        )
    return lines


def fraction_table(key: str, summaries: list[FractionSummary], with_others: bool) -> list[str]:
    fractions = sorted({f for s in summaries for f in s.acc if f is not None})
    head = "| arm | size | dataset |" + (" other keys |" if with_others else "")
    cols = "".join(f" acc % at {fmt_value(f)} |" for f in fractions)
    lines = [
        "### Training data needed",
        "",
        f"Target: the `{BASELINE_ARM}` arm's mean test accuracy at its largest `{key}` minus "
        f"{100 * REACH_MARGIN:g} points (same size and dataset"
        + (", and the same other keys)." if with_others else ")."),
        "",
        f"{head}{cols} target % | smallest {key} reaching it |",
        "|---|---|---|" + ("---|" if with_others else "") + "---:|" * (len(fractions) + 2),
    ]
    for s in summaries:
        accs = "".join(f" {pct(s.acc.get(f, math.nan))} |" for f in fractions)
        lines.append(f"{line_cells(s.line, with_others)}{accs} {pct(s.target)} | {reached(s)} |")
    return lines


def reached(s: FractionSummary) -> str:
    if math.isnan(s.target):
        return f"– (no {BASELINE_ARM} arm)"
    return "not reached" if s.reached_at is None else fmt_value(s.reached_at)


def curve_section(key: str, points: list[CurvePoint], png: str, csv_name: str) -> list[str]:
    """`## Test accuracy against <key>`: the figure, a table per line, and the key's summary."""
    with_others = any(p.others for p in points)
    text = [
        f"## Test accuracy against `{key}`",
        "",
        f"![test accuracy against {key}]({png})",
        "",
        "Mean ± std of the test accuracy over seeds; 95 % CI: t-interval of the mean (none "
        f"for one seed). The same numbers: `{csv_name}`.",
        "",
    ]
    for line, members in by_line(points).items():
        text += [f"### {line_label(line)}", "", *curve_table(key, members), ""]
    if is_lr_key(key):
        text += lr_table(key, lr_summaries(points), with_others)
    if is_fraction_key(key):
        text += fraction_table(key, fraction_summaries(points), with_others)
    return text


def curve_records(key: str, points: list[CurvePoint]) -> list[dict[str, Any]]:
    """One record per line and value: the curve's CSV and its W&B table."""
    return [
        {
            "arm": p.arm,
            "size": p.size,
            "dataset": p.dataset,
            **dict(p.others),
            key: p.value,
            "n": p.n,
            "acc_mean": p.acc_mean,
            "acc_std": p.acc_std,
            "ci_low": p.ci_low,
            "ci_high": p.ci_high,
        }
        for p in points
    ]

"""Test accuracy against one swept key: points per arm and value, and what a reader asks of them
(the best learning rate and how much it matters; how little training data an arm needs)."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from convattn.report.collect import TEST_METRIC, Job
from convattn.report.fmt import fmt_value
from convattn.report.stats import BASELINE_ARM, mean, std, t_interval
from convattn.report.swept import Setting, setting_of, setting_sort

REACH_MARGIN = 0.02  # "reaches the baseline": within 2 accuracy points of its full-data mean
TOLERANCE = 1e-9  # float noise must not decide whether a mean reaches a target

LineKey = tuple[str, str | None, str | None, Setting]  # arm, size, dataset, other swept keys


@dataclass
class CurvePoint:
    arm: str
    size: str | None
    dataset: str | None
    others: Setting  # the values of the other swept keys, shown in the line's label
    value: float | None
    n: int
    acc_mean: float
    acc_std: float
    ci_low: float
    ci_high: float

    @property
    def line(self) -> LineKey:
        return (self.arm, self.size, self.dataset, self.others)


@dataclass
class LrSummary:
    line: LineKey
    best_acc: float
    best_lr: float | None
    spread: float  # max - min of the mean accuracy over the grid


@dataclass
class FractionSummary:
    line: LineKey
    acc: dict[float | None, float]  # mean accuracy at each fraction
    target: float  # the baseline's mean at its largest fraction minus REACH_MARGIN
    reached_at: float | None  # the smallest fraction whose mean reaches `target`


def is_lr_key(key: str) -> bool:
    """`recipe.optimizer.lr`, `base_lr`, ...: a learning rate by name."""
    return key.rsplit(".", 1)[-1].lower().endswith("lr")


def is_fraction_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == "train_fraction"


def curve_points(jobs: list[Job], key: str, swept: list[str]) -> list[CurvePoint]:
    """Mean, std and 95 % t-interval of test accuracy over seeds, per line and value of `key`."""
    others = [k for k in swept if k != key]
    groups: dict[tuple, list[float]] = defaultdict(list)
    for job in jobs:
        if job.usable:
            line = (str(job.arm), job.size, job.dataset, setting_of(job, others))
            groups[(line, job.config.get(key))].append(job.metrics[TEST_METRIC])
    points = [
        CurvePoint(*line, value, len(accs), mean(accs), std(accs), *t_interval(accs))
        for (line, value), accs in groups.items()
    ]
    return sorted(points, key=point_order)


def point_order(p: CurvePoint) -> tuple:
    return (
        str(p.dataset),
        str(p.size),
        setting_sort(p.others),
        p.arm != BASELINE_ARM,
        p.arm,
        setting_sort((("", p.value),)),
    )


def by_line(points: list[CurvePoint]) -> dict[LineKey, list[CurvePoint]]:
    """Points by line (arm, size, dataset, other keys), each sorted by the key's value."""
    out: dict[LineKey, list[CurvePoint]] = defaultdict(list)
    for p in points:
        out[p.line].append(p)
    return dict(out)


def lr_summaries(points: list[CurvePoint]) -> list[LrSummary]:
    """Per line: the best mean accuracy, the learning rate that gave it, and the spread."""
    out = []
    for line, members in by_line(points).items():
        best = max(members, key=lambda p: p.acc_mean)
        accs = [p.acc_mean for p in members]
        out.append(LrSummary(line, best.acc_mean, best.value, max(accs) - min(accs)))
    return out


def fraction_summaries(points: list[CurvePoint]) -> list[FractionSummary]:
    """Per line: the accuracy at each fraction and the smallest fraction at which the mean
    reaches the baseline's largest-fraction mean minus REACH_MARGIN (nan target: no baseline)."""
    grouped = by_line(points)
    out = []
    for line, members in grouped.items():
        base = grouped.get((BASELINE_ARM, *line[1:]))
        target = full_data_mean(base) - REACH_MARGIN if base else math.nan
        reaching = [
            p.value for p in members if p.acc_mean >= target - TOLERANCE and p.value is not None
        ]
        out.append(
            FractionSummary(
                line=line,
                acc={p.value: p.acc_mean for p in members},
                target=target,
                reached_at=min(reaching) if reaching else None,
            )
        )
    return out


def full_data_mean(points: list[CurvePoint]) -> float:
    """The mean accuracy at the largest fraction the line has."""
    valued = [p for p in points if p.value is not None]
    return max(valued, key=lambda p: p.value).acc_mean if valued else math.nan


def span_decade(values: list[float | None]) -> bool:
    """Log axis when the positive values span a factor of 10 or more."""
    present = [v for v in values if v is not None]
    return bool(present) and min(present) > 0 and max(present) / min(present) >= 10


def line_label(line: LineKey) -> str:
    arm, size, dataset, others = line
    extra = "".join(f", {k}={fmt_value(v)}" for k, v in others)
    return f"{arm} ({size}, {dataset}{extra})"

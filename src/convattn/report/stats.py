"""Per-arm aggregates over seeds, and paired differences against the conv-only baseline.

When the sweep varied other numeric keys (`swept`), every group is also split by their values:
one row per arm and setting, and an arm is paired with the baseline at the same setting.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from convattn.report.collect import TEST_METRIC, Job
from convattn.report.swept import Setting, setting_of, setting_sort

BASELINE_ARM = "cnn"

GroupKey = tuple[str, str | None, str | None, Setting]  # arm, size, dataset, swept values


@dataclass
class ArmSummary:
    arm: str
    size: str | None
    dataset: str | None
    setting: Setting
    n: int
    global_steps: float  # optimizer steps each job took (mean over seeds; see budget_notes)
    train_images: float  # images in the training set each job drew from
    acc_mean: float
    acc_std: float
    f1_mean: float
    ece_mean: float
    params: float
    gflops: float
    train_images_per_s: float
    time_x_cnn: float  # the baseline's training images/s over this arm's: compute overhead
    latency_ms_b1: float
    wall_time_s: float
    deletion_auc: float


@dataclass
class PairedDiff:
    arm: str
    size: str | None
    dataset: str | None
    setting: Setting
    n_pairs: int
    mean: float
    ci_low: float
    ci_high: float


def group_key(job: Job, swept: list[str]) -> GroupKey:
    return (str(job.arm), job.size, job.dataset, setting_of(job, swept))


def sort_key(key: GroupKey) -> tuple:
    """Within each dataset, size and setting: the baseline first, then the other arms by name."""
    arm, size, dataset, setting = key
    return (str(dataset), str(size), setting_sort(setting), arm != BASELINE_ARM, arm)


def baseline_of(key: GroupKey) -> GroupKey:
    return (BASELINE_ARM, *key[1:])


def mean(values: list[float | None]) -> float:
    """Mean of the values present (None and NaN are missing measurements)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return math.nan
    try:
        return statistics.fmean(present)
    except OverflowError:  # values near the float limit (1e308): their sum is past it
        return sum(present) / len(present)  # inf (or nan for +inf and -inf), never a crash


def std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else math.nan


def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of `values`; (nan, nan) for fewer than two."""
    if len(values) < 2:
        return math.nan, math.nan
    from scipy import stats as scipy_stats  # slow import: only when an interval is needed

    m = statistics.fmean(values)
    t = scipy_stats.t.ppf(0.5 + confidence / 2, df=len(values) - 1)
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return m - half, m + half


def usable_groups(jobs: list[Job], swept: list[str]) -> dict[GroupKey, list[Job]]:
    """Usable jobs by (arm, size, dataset, setting), baseline first in each block."""
    groups: dict[GroupKey, list[Job]] = defaultdict(list)
    for job in jobs:
        if job.usable:
            groups[group_key(job, swept)].append(job)
    return dict(sorted(groups.items(), key=lambda kv: sort_key(kv[0])))


def summarise_group(key: GroupKey, members: list[Job]) -> ArmSummary:
    accs = [j.metrics[TEST_METRIC] for j in members]
    profile = [j.facts.get("profile") or {} for j in members]
    return ArmSummary(
        arm=key[0],
        size=key[1],
        dataset=key[2],
        setting=key[3],
        n=len(members),
        global_steps=mean([j.facts.get("global_step") for j in members]),
        train_images=mean([j.facts.get("train_images") for j in members]),
        acc_mean=mean(accs),
        acc_std=std(accs),
        f1_mean=mean([j.metrics.get("test/f1_macro") for j in members]),
        ece_mean=mean([j.metrics.get("test/ece") for j in members]),
        params=mean([j.facts.get("params") for j in members]),
        gflops=mean([p.get("gflops") for p in profile]),
        train_images_per_s=mean([p.get("train_images_per_s") for p in profile]),
        time_x_cnn=math.nan,
        latency_ms_b1=mean([p.get("latency_ms_b1") for p in profile]),
        wall_time_s=mean([j.facts.get("wall_time_s") for j in members]),
        deletion_auc=mean([j.facts.get("deletion_auc") for j in members]),
    )


def summarise(jobs: list[Job], swept: list[str] | None = None) -> list[ArmSummary]:
    """One row per (arm, size, dataset, swept setting) over its usable jobs."""
    rows = {k: summarise_group(k, m) for k, m in usable_groups(jobs, swept or []).items()}
    for key, row in rows.items():
        base = rows.get(baseline_of(key))
        if base is not None and row.train_images_per_s > 0:
            row.time_x_cnn = base.train_images_per_s / row.train_images_per_s
    return list(rows.values())


def spread(values: list[float | None]) -> str | None:
    """The range `a–b` when the present values differ, else None."""
    present = sorted({v for v in values if v is not None})
    return f"{present[0]:,}–{present[-1]:,}" if len(present) > 1 else None


def budget_notes(jobs: list[Job], swept: list[str] | None = None) -> list[str]:
    """Where the rows' training budgets differ, said plainly: within a row (its seeds took
    different step counts or drew from different training sets) and between the rows of one
    table block (same size, dataset and swept setting), whose accuracies would otherwise be
    compared as if trained alike."""
    notes = []
    blocks: dict[tuple, dict[str, tuple]] = defaultdict(dict)
    for key, members in usable_groups(jobs, swept or []).items():
        steps = [j.facts.get("global_step") for j in members]
        images = [j.facts.get("train_images") for j in members]
        for what, values in (("optimizer steps", steps), ("training images", images)):
            if (gap := spread(values)) is not None:
                notes.append(f"Budget: the {key[0]} row averages seeds that ran {gap} {what}.")
        blocks[key[1:]][key[0]] = (mean(steps), mean(images))
    for (size, dataset, setting), budgets in blocks.items():
        if len(set(budgets.values())) > 1:
            listed = ", ".join(
                f"{arm} {steps:,.0f} steps on {images:,.0f} images"
                for arm, (steps, images) in budgets.items()
            )
            where = f"{dataset}, size {size}" + "".join(f", {k}={v}" for k, v in setting)
            notes.append(
                f"Budget: the rows for {where} were trained at different budgets ({listed}); "
                "their accuracies are not comparable as they stand."
            )
    return notes


def accuracy_by_seed(members: list[Job]) -> dict[int | None, float]:
    return {job.seed: job.metrics[TEST_METRIC] for job in members}


def paired_differences(
    jobs: list[Job], swept: list[str] | None = None, confidence: float = 0.95
) -> list[PairedDiff]:
    """Test-accuracy difference of each arm minus the baseline (same size, dataset and swept
    setting), paired by seed, with a t-interval of the mean difference."""
    groups = usable_groups(jobs, swept or [])
    diffs = []
    for key, members in groups.items():
        base = groups.get(baseline_of(key))
        if key[0] == BASELINE_ARM or not base:
            continue
        arm_acc, base_acc = accuracy_by_seed(members), accuracy_by_seed(base)
        seeds = sorted(s for s in arm_acc.keys() & base_acc.keys() if s is not None)
        pairs = [arm_acc[s] - base_acc[s] for s in seeds]
        if pairs:
            low, high = t_interval(pairs, confidence)
            diffs.append(PairedDiff(*key, len(pairs), statistics.fmean(pairs), low, high))
    return diffs

"""Per-arm aggregates over seeds, and paired differences against the conv-only baseline."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from scipy import stats as scipy_stats

from convattn.report.collect import Job

BASELINE_ARM = "cnn"


@dataclass
class ArmSummary:
    arm: str
    size: str | None
    dataset: str | None
    n: int
    acc_mean: float
    acc_std: float
    f1_mean: float
    ece_mean: float
    params: float
    gflops: float
    train_images_per_s: float
    latency_ms_b1: float
    wall_time_s: float
    deletion_auc: float


@dataclass
class PairedDiff:
    arm: str
    size: str | None
    dataset: str | None
    n_pairs: int
    mean: float
    ci_low: float
    ci_high: float


def group_key(job: Job) -> tuple[str, str | None, str | None]:
    return (str(job.arm), job.size, job.dataset)


def mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else math.nan


def summarise(jobs: list[Job]) -> list[ArmSummary]:
    """One row per (arm, size, dataset) over its completed jobs."""
    groups: dict[tuple, list[Job]] = defaultdict(list)
    for job in jobs:
        if job.status == "completed":
            groups[group_key(job)].append(job)
    rows = []
    for (arm, size, dataset), members in sorted(groups.items(), key=lambda kv: sort_key(kv[0])):
        accs = [j.metrics["test/acc"] for j in members]
        profile = [j.facts.get("profile") or {} for j in members]
        rows.append(
            ArmSummary(
                arm=arm,
                size=size,
                dataset=dataset,
                n=len(members),
                acc_mean=mean(accs),
                acc_std=std(accs),
                f1_mean=mean([j.metrics.get("test/f1_macro", math.nan) for j in members]),
                ece_mean=mean([j.metrics.get("test/ece", math.nan) for j in members]),
                params=mean([j.facts.get("params", math.nan) for j in members]),
                gflops=mean([p.get("gflops", math.nan) for p in profile]),
                train_images_per_s=mean([p.get("train_images_per_s", math.nan) for p in profile]),
                latency_ms_b1=mean([p.get("latency_ms_b1", math.nan) for p in profile]),
                wall_time_s=mean([j.facts.get("wall_time_s", math.nan) for j in members]),
                deletion_auc=mean([j.facts.get("deletion_auc", math.nan) for j in members]),
            )
        )
    return rows


def sort_key(key: tuple[str, str | None, str | None]) -> tuple:
    """Baseline first, then the other arms by name, within each dataset and size."""
    arm, size, dataset = key
    return (str(dataset), str(size), arm != BASELINE_ARM, arm)


def paired_differences(jobs: list[Job], confidence: float = 0.95) -> list[PairedDiff]:
    """Test-accuracy difference of each arm minus the baseline, paired by seed, with a t CI."""
    acc: dict[tuple, dict[int, float]] = defaultdict(dict)
    for job in jobs:
        if job.status == "completed":
            acc[group_key(job)][job.seed] = job.metrics["test/acc"]
    diffs = []
    for (arm, size, dataset), by_seed in sorted(acc.items(), key=lambda kv: sort_key(kv[0])):
        base = acc.get((BASELINE_ARM, size, dataset))
        if arm == BASELINE_ARM or not base:
            continue
        pairs = [by_seed[s] - base[s] for s in sorted(by_seed.keys() & base.keys())]
        if not pairs:
            continue
        m = statistics.fmean(pairs)
        half = math.nan
        if len(pairs) > 1:
            t = scipy_stats.t.ppf(0.5 + confidence / 2, df=len(pairs) - 1)
            half = t * statistics.stdev(pairs) / math.sqrt(len(pairs))
        diffs.append(PairedDiff(arm, size, dataset, len(pairs), m, m - half, m + half))
    return diffs

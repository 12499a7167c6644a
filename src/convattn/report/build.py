"""Everything a report shows, computed once from the jobs; rendered to files and to W&B."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from convattn.report.collect import Job
from convattn.report.curves import CurvePoint, curve_points
from convattn.report.stats import (
    ArmSummary,
    PairedDiff,
    budget_notes,
    paired_differences,
    summarise,
)
from convattn.report.swept import swept_keys


@dataclass
class Report:
    jobs: list[Job]
    swept: list[str]  # numeric keys varied besides the seed
    rows: list[ArmSummary]  # one per arm (and size, dataset, swept setting)
    diffs: list[PairedDiff]  # each arm minus the baseline, paired by seed
    curves: dict[str, list[CurvePoint]]  # per swept key: accuracy per line and value
    notes: list[str] = field(default_factory=list)  # e.g. jobs left out of the deletion AUC

    @property
    def usable(self) -> list[Job]:
        return [j for j in self.jobs if j.usable]

    @property
    def skipped(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "skipped"]

    @property
    def unfinished(self) -> list[Job]:
        """Failed, interrupted and unfinished jobs: listed, never averaged."""
        return [j for j in self.jobs if not j.usable and j.status != "skipped"]


def build_report(jobs: list[Job], notes: list[str] | None = None) -> Report:
    swept = swept_keys(jobs)
    return Report(
        jobs=jobs,
        swept=swept,
        rows=summarise(jobs, swept),
        diffs=paired_differences(jobs, swept),
        curves={key: curve_points(jobs, key, swept) for key in swept},
        notes=budget_notes(jobs, swept) + (notes or []),
    )


def curve_file(key: str, suffix: str) -> str:
    """`report_<key>.<suffix>`, e.g. report_data.train_fraction.png (a file-name-safe key)."""
    return f"report_{re.sub(r'[^A-Za-z0-9._-]', '_', key)}.{suffix}"

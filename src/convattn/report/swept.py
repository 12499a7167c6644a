"""Which numeric config keys a sweep varied besides the seed, read from the jobs' configs.

A key is swept when its value differs between usable jobs of the same arm (and size, dataset).
Keys the sweep's overrides set are always kept. Any other varying key is dropped when its value
follows from the seed and the keys already kept (a value derived from a swept one, or the
different defaults of two config files of one arm), so one sweep gives one curve, not several
copies of it.
"""

from __future__ import annotations

from collections import defaultdict

from convattn.report.collect import Job
from convattn.report.fmt import fmt_value

IGNORED_KEYS = frozenset({"seed"})

Setting = tuple[tuple[str, float | None], ...]


def by_arm(jobs: list[Job]) -> list[list[Job]]:
    """Usable jobs grouped by (arm, size, dataset)."""
    groups: dict[tuple, list[Job]] = defaultdict(list)
    for job in jobs:
        if job.usable:
            groups[(job.arm, job.size, job.dataset)].append(job)
    return list(groups.values())


def varies(key: str, members: list[Job]) -> bool:
    return len({job.config.get(key) for job in members}) > 1


def follows_from(key: str, sources: list[str], members: list[Job]) -> bool:
    """True when `key`'s value is a function of the `sources` keys' values among `members`."""
    seen: dict[tuple, float | None] = {}
    for job in members:
        given = tuple(job.config.get(s) for s in sources)
        if seen.setdefault(given, job.config.get(key)) != job.config.get(key):
            return False
    return True


def swept_keys(jobs: list[Job]) -> list[str]:
    """The swept numeric keys, those the overrides set first, then by name."""
    groups = by_arm(jobs)
    candidates = {k for members in groups for job in members for k in job.config}
    varying = {k for k in candidates - IGNORED_KEYS if any(varies(k, m) for m in groups)}
    overridden = frozenset().union(*(job.overridden for m in groups for job in m))
    kept: list[str] = []
    for key in sorted(varying, key=lambda k: (k not in overridden, k)):
        sources = [*IGNORED_KEYS, *kept]
        if key in overridden or not all(follows_from(key, sources, m) for m in groups):
            kept.append(key)
    return kept


def setting_of(job: Job, keys: list[str]) -> Setting:
    """The job's values of `keys`, in order: part of how jobs are grouped."""
    return tuple((key, job.config.get(key)) for key in keys)


def setting_label(setting: Setting) -> str:
    return ", ".join(f"{key}={fmt_value(value)}" for key, value in setting)


def setting_sort(setting: Setting) -> tuple:
    """Sortable form of a setting (a job without the key sorts last)."""
    return tuple((value is None, value or 0.0) for _, value in setting)

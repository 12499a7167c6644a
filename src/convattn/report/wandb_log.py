"""`convattn-report --wandb`: the report as one W&B run beside the sweep's job runs.

The run has `job_type="report"` and the jobs' group, so the dashboard shows it with the sweep
it summarises. wandb is imported only here, only when `--wandb` is given.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from convattn.report.build import Report, curve_file
from convattn.report.collect import REPORT_MARK, Job, leet_inspect
from convattn.report.curve_tables import curve_records
from convattn.report.render import summary_records
from convattn.report.swept import setting_label
from convattn.utils.wandb_mode import wandb_should_be_offline

DEFAULT_PROJECT = "convattn"


def logged_group(job: Job) -> str | None:
    """The group of the job's own W&B run, read back from its run dir (None without one)."""
    runs = [job.path] if "run-" in job.path.name else sorted((job.path / "wandb").glob("*run-*"))
    for run in (r for r in runs if r.is_dir()):
        try:
            records = [json.loads(line) for line in leet_inspect(run).splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError, json.JSONDecodeError):
            continue
        for record in records:
            if record.get("type") == "run":
                return record["run"].get("run_group") or None
    return None


def sweep_group(job: Job) -> str | None:
    """The jobs' W&B group: set in their config, else as their run logged it, else rebuilt the
    way `convattn.run.loggers.sweep_name` makes it: `<task_name>-<sweep dir name>`."""
    if job.wandb.get("group"):
        return str(job.wandb["group"])
    if group := logged_group(job):
        return group
    task = job.wandb.get("task_name")
    return f"{task}-{job.path.parent.name}" if task else None


def wandb_mode() -> str:
    """Offline unless W&B credentials exist (as for training); WANDB_MODE=disabled is kept."""
    if os.environ.get("WANDB_MODE", "").lower() == "disabled":
        return "disabled"
    return "offline" if wandb_should_be_offline() else "online"


def table(records: list[dict[str, Any]]) -> Any:
    import wandb

    columns = list(records[0])
    return wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in records])


def diff_records(report: Report) -> list[dict[str, Any]]:
    return [
        {"arm": d.arm, "size": d.size, "dataset": d.dataset, **dict(d.setting)}
        | {"n_pairs": d.n_pairs, "mean": d.mean, "ci_low": d.ci_low, "ci_high": d.ci_high}
        for d in report.diffs
    ]


def row_name(arm: str, size: str | None, dataset: str | None, setting: tuple) -> str:
    name = f"{arm}-{size}-{dataset}"
    return f"{name}/{setting_label(setting)}" if setting else name


def summary_numbers(report: Report) -> dict[str, float]:
    """The key numbers: each arm's mean test accuracy and its paired difference to cnn."""
    numbers = {
        f"acc_mean/{row_name(r.arm, r.size, r.dataset, r.setting)}": r.acc_mean for r in report.rows
    }
    for d in report.diffs:
        numbers[f"delta_acc_vs_cnn/{row_name(d.arm, d.size, d.dataset, d.setting)}"] = d.mean
    return numbers


def media(report: Report, out: Path) -> dict[str, Any]:
    """The tables and figures to log, by W&B key."""
    import wandb

    tables = {"per_arm": summary_records(report), "paired_vs_cnn": diff_records(report)}
    tables |= {f"curves/{key}": curve_records(key, pts) for key, pts in report.curves.items()}
    logged: dict[str, Any] = {k: table(v) for k, v in tables.items() if v}  # none without cnn
    logged["figures/cost"] = wandb.Image(str(out / "report.png"))
    for key in report.curves:
        logged[f"figures/{key}"] = wandb.Image(str(out / curve_file(key, "png")))
    return logged


def log_report(report: Report, out: Path, dirs: list[Path]) -> Path:
    """Log the report as one W&B run under `out`; returns the run's directory."""
    import wandb

    job = report.usable[0]
    group = sweep_group(job)
    run = wandb.init(
        project=job.wandb.get("project") or DEFAULT_PROJECT,
        entity=job.wandb.get("entity"),
        group=group,
        job_type="report",
        name=f"report-{group or out.parent.name}",
        dir=str(out),
        mode=wandb_mode(),
        config={
            REPORT_MARK: True,
            "dirs": [str(d) for d in dirs],
            "swept": report.swept,
            "jobs": len(report.jobs),
            "usable": len(report.usable),
            "skipped": len(report.skipped),
        },
    )
    run.log(media(report, out))
    run.summary.update(summary_numbers(report))
    run_dir = Path(run.dir).parent
    run.finish()
    return run_dir

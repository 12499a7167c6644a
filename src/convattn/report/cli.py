"""`convattn-report DIR [DIR ...] [-o OUT]`: tables, CSVs and figures for one or more sweeps.

One bad job never stops the report: unreadable records are listed as skipped, failed and
unfinished jobs as such, and the rest is reported. Exit status 2 only when no job is usable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convattn.report.build import Report, build_report, curve_file
from convattn.report.collect import Job, collect
from convattn.report.curve_tables import curve_records
from convattn.report.plots import write_cost_plot, write_curve_plot
from convattn.report.render import skipped_list, summary_records, write_markdown, write_records


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="convattn-report", description=__doc__)
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun (or run) directories")
    parser.add_argument(
        "-o", "--out", type=Path, default=None, help="output dir (default: <first dir>/report)"
    )
    parser.add_argument(
        "--source",
        choices=["metrics", "wandb"],
        default="metrics",
        help="read each job's metrics.json, or its W&B offline run",
    )
    parser.add_argument(
        "--deletion",
        type=int,
        default=0,
        metavar="N",
        help="add the deletion-metric AUC of Grad-CAM on N test images per job "
        "(0: off, -1: the whole test split; about 10 s per job on a CPU)",
    )
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the report as one W&B run (job_type=report) in the sweep's group; "
        "offline under OUT unless W&B credentials exist",
    )
    return parser.parse_args(argv)


def add_deletion_auc(jobs: list[Job], num_images: int | None) -> list[str]:
    """Deletion AUC of Grad-CAM (lower = the map finds what matters) for each usable job; the
    jobs left out (no checkpoint, or one that cannot be loaded) come back as notes."""
    from convattn.errors import ConvattnError
    from convattn.explain import deletion_auc_for_run

    notes = []
    for job in (j for j in jobs if j.usable):
        if not (job.path / "checkpoints" / "best.ckpt").is_file():
            notes.append(f"`{job.path}`: no checkpoints/best.ckpt, so no deletion AUC.")
            continue
        try:
            job.facts["deletion_auc"] = deletion_auc_for_run(job.path, num_images=num_images)
        except ConvattnError as err:
            notes.append(f"`{job.path}`: no deletion AUC: {err}")
    return notes


def nothing_usable(report: Report, dirs: list[Path]) -> str:
    """The one paragraph printed when no job can be reported, and what each job was."""
    counts: dict[str, int] = {}
    for job in report.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [
        f"convattn-report: none of the {len(report.jobs)} jobs under "
        f"{', '.join(map(str, dirs))} completed with a test accuracy ({summary}), so there is "
        "nothing to compare. Skipped records are listed with the reason; re-run the failed or "
        "unfinished jobs, or pass the directories of a finished sweep.",
        *skipped_list(report.skipped),
        *(
            f"- `{j.path}`: {j.status}" + (f" — {j.error}" if j.error else "")
            for j in report.unfinished
        ),
    ]
    return "\n".join(lines)


def write_files(report: Report, out: Path) -> list[str]:
    """report.md, report.csv, report.png and per swept key report_<key>.{png,csv}."""
    out.mkdir(parents=True, exist_ok=True)
    write_markdown(out / "report.md", report)
    write_records(out / "report.csv", summary_records(report))
    write_cost_plot(out / "report.png", report.rows)
    names = ["report.md", "report.csv", "report.png"]
    for key, points in report.curves.items():
        write_curve_plot(out / curve_file(key, "png"), key, points)
        write_records(out / curve_file(key, "csv"), curve_records(key, points))
        names += [curve_file(key, "png"), curve_file(key, "csv")]
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(
            f"convattn-report: no such directory: {', '.join(missing)}; pass multirun dirs such "
            "as logs/train/multiruns/<date>.",
            file=sys.stderr,
        )
        return 2
    jobs = collect(args.dirs, source=args.source)
    if not jobs:
        print(
            f"convattn-report: no jobs found under {', '.join(map(str, args.dirs))} (looked for "
            "job dirs with .hydra/config.yaml, or offline-run-* with --source wandb).",
            file=sys.stderr,
        )
        return 2
    report = build_report(jobs)
    if not report.usable:
        print(nothing_usable(report, args.dirs), file=sys.stderr)
        return 2
    for line in skipped_list(report.skipped):
        print(f"convattn-report: skipped {line.removeprefix('- ')}", file=sys.stderr)
    if args.deletion:
        notes = add_deletion_auc(jobs, None if args.deletion < 0 else args.deletion)
        report = build_report(jobs, notes)
    out = args.out or args.dirs[0] / "report"
    names = write_files(report, out)
    text = (out / "report.md").read_text().splitlines()
    print("\n".join(line for line in text if not line.startswith("![")).rstrip())
    print(f"wrote {', '.join(f'{out}/{n}' for n in names)}")
    if args.wandb:
        from convattn.report.wandb_log import log_report

        print(f"logged the report to W&B: {log_report(report, out, args.dirs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

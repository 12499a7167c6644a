"""`convattn-report DIR [DIR ...] [-o OUT]`: one table, CSV and plot for one or more sweeps."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convattn.report.collect import Job, collect
from convattn.report.render import write_csv, write_markdown, write_plot
from convattn.report.stats import paired_differences, summarise


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
    return parser.parse_args(argv)


def add_deletion_auc(jobs: list[Job], num_images: int | None) -> None:
    """Deletion AUC of Grad-CAM (lower = the map finds what matters) for each completed job."""
    from convattn.explain import deletion_auc_for_run

    for job in jobs:
        if job.status == "completed" and (job.path / "checkpoints").is_dir():
            job.facts["deletion_auc"] = deletion_auc_for_run(job.path, num_images=num_images)


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
    if args.deletion:
        add_deletion_auc(jobs, None if args.deletion < 0 else args.deletion)
    out = args.out or args.dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows, diffs = summarise(jobs), paired_differences(jobs)
    write_markdown(out / "report.md", rows, diffs, jobs)
    write_csv(out / "report.csv", rows)
    write_plot(out / "report.png", rows)
    print((out / "report.md").read_text().split("![")[0].rstrip())
    print(f"wrote {out}/report.md, report.csv, report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Write the report: report.md (tables, curves, what was left out) and report.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from convattn.report.build import Report, curve_file
from convattn.report.collect import RECORD_NAME, Job
from convattn.report.curve_tables import curve_section
from convattn.report.fmt import fmt_value, num, pct
from convattn.report.stats import BASELINE_ARM, ArmSummary, PairedDiff


def code_list(keys: list[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys)


def summary_table(rows: list[ArmSummary], swept: list[str]) -> list[str]:
    keys = "".join(f" {k} |" for k in swept)
    lines = [
        f"| arm | size | dataset |{keys} n | steps | train images | test acc % (mean ± std) "
        "| macro-F1 % | ECE "
        "| params (M) | GFLOPs/img | train img/s | time × cnn | latency ms (b=1) | wall time s "
        "| deletion AUC ↓ |",
        "|---|---|---|" + "---:|" * len(swept) + "---:|" * 13,
    ]
    for r in rows:
        values = "".join(f" {fmt_value(v)} |" for _, v in r.setting)
        lines.append(
            f"| {r.arm} | {r.size} | {r.dataset} |{values} {r.n} "
            f"| {num(r.global_steps, ',.0f')} | {num(r.train_images, ',.0f')} "
            f"| {pct(r.acc_mean)} ± {pct(r.acc_std)} | {pct(r.f1_mean)} "
            f"| {num(r.ece_mean, '.4f')} | {num(r.params / 1e6, '.3f')} "
            f"| {num(r.gflops, '.4f')} | {num(r.train_images_per_s, '.0f')} "
            f"| {num(r.time_x_cnn, '.2f')} | {num(r.latency_ms_b1, '.2f')} "
            f"| {num(r.wall_time_s, '.0f')} | {num(r.deletion_auc, '.3f')} |"
        )
    return lines


def diff_table(diffs: list[PairedDiff], swept: list[str]) -> list[str]:
    keys = "".join(f" {k} |" for k in swept)
    lines = [
        f"| arm | size | dataset |{keys} paired seeds | Δ test acc (points) | 95 % CI |",
        "|---|---|---|" + "---:|" * len(swept) + "---:|---:|---|",
    ]
    for d in diffs:
        values = "".join(f" {fmt_value(v)} |" for _, v in d.setting)
        ci = (
            "n/a (one seed)"
            if math.isnan(d.ci_low)
            else f"[{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]"
        )
        lines.append(
            f"| {d.arm} | {d.size} | {d.dataset} |{values} {d.n_pairs} | {100 * d.mean:+.2f} "
            f"| {ci} |"
        )
    return lines


def problem_list(jobs: list[Job]) -> list[str]:
    """Failed, interrupted and unfinished jobs, with their error."""
    if not jobs:
        return ["All jobs completed."]
    return [
        f"- `{j.path}`: **{j.status}** (arm {j.arm}, seed {j.seed})"
        + (f" — {j.error}" if j.error else "")
        for j in jobs
    ]


def skipped_list(jobs: list[Job]) -> list[str]:
    """Jobs whose record could not be used: the file and why."""
    return [f"- `{j.source or j.path / RECORD_NAME}`: {j.error}" for j in jobs]


def headline(report: Report) -> list[str]:
    text = [f"{len(report.usable)} of {len(report.jobs)} jobs completed."]
    if report.skipped:
        text.append(
            f"{len(report.skipped)} skipped: their records could not be used "
            "(see *Skipped records*)."
        )
    if report.swept:
        text.append(
            f"Swept besides the seed: {code_list(report.swept)}. The tables below have one row "
            "per arm and value, and arms are paired with the baseline at the same value."
        )
    return [" ".join(text)]


def markdown(report: Report) -> list[str]:
    by = f" and {code_list(report.swept)}" if report.swept else ""
    at = f", at the same {code_list(report.swept)}" if report.swept else ""
    text = [
        "# Ablation report",
        "",
        *headline(report),
        "",
        f"## Per arm{by}",
        "",
        *summary_table(report.rows, report.swept),
        "",
        f"*time × {BASELINE_ARM}*: the {BASELINE_ARM} arm's training images/s over the arm's "
        f"(same size, dataset{' and swept values' if report.swept else ''}): the compute time "
        "per image relative to the conv-only baseline.",
        "",
        f"## Against the conv-only baseline (paired by seed{at})",
        "",
        *(
            diff_table(report.diffs, report.swept)
            if report.diffs
            else [f"No arm shares seeds with a `{BASELINE_ARM}` baseline."]
        ),
        "",
        "![accuracy against cost](report.png)",
        "",
    ]
    for key, points in report.curves.items():
        text += [*curve_section(key, points, curve_file(key, "png"), curve_file(key, "csv")), ""]
    text += ["## Failed or unfinished jobs", "", *problem_list(report.unfinished), ""]
    if report.skipped:
        text += ["## Skipped records", "", *skipped_list(report.skipped), ""]
    if report.notes:
        text += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return text


def write_markdown(path: Path, report: Report) -> None:
    path.write_text("\n".join(markdown(report)))


def summary_records(report: Report) -> list[dict[str, Any]]:
    """The per-arm rows as flat records (swept keys as columns): the CSV and the W&B table."""
    records = []
    for r in report.rows:
        fields = dict(vars(r))
        fields.pop("setting")
        records.append({"arm": r.arm, "size": r.size, "dataset": r.dataset, **dict(r.setting)})
        records[-1] |= fields
    return records


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        if records:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)

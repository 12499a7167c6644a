"""Write the report: markdown table, CSV, and accuracy against cost plots."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt

from convattn.report.collect import Job
from convattn.report.stats import ArmSummary, PairedDiff


def pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:.2f}"


def num(x: float, fmt: str) -> str:
    return "–" if x is None or math.isnan(x) else format(x, fmt)


def summary_table(rows: list[ArmSummary]) -> list[str]:
    lines = [
        "| arm | size | dataset | n | test acc % (mean ± std) | macro-F1 % | ECE | params (M) "
        "| GFLOPs/img | train img/s | latency ms (b=1) | wall time s | deletion AUC ↓ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.arm} | {r.size} | {r.dataset} | {r.n} | {pct(r.acc_mean)} ± {pct(r.acc_std)} "
            f"| {pct(r.f1_mean)} | {num(r.ece_mean, '.4f')} | {num(r.params / 1e6, '.3f')} "
            f"| {num(r.gflops, '.4f')} | {num(r.train_images_per_s, '.0f')} "
            f"| {num(r.latency_ms_b1, '.2f')} | {num(r.wall_time_s, '.0f')} "
            f"| {num(r.deletion_auc, '.3f')} |"
        )
    return lines


def diff_table(diffs: list[PairedDiff]) -> list[str]:
    lines = [
        "| arm | size | dataset | paired seeds | Δ test acc (points) | 95 % CI |",
        "|---|---|---|---:|---:|---|",
    ]
    for d in diffs:
        ci = (
            "n/a (one seed)"
            if math.isnan(d.ci_low)
            else f"[{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]"
        )
        lines.append(
            f"| {d.arm} | {d.size} | {d.dataset} | {d.n_pairs} | {100 * d.mean:+.2f} | {ci} |"
        )
    return lines


def problem_list(jobs: list[Job]) -> list[str]:
    bad = [j for j in jobs if j.status != "completed"]
    if not bad:
        return ["All jobs completed."]
    return [
        f"- `{j.path}`: **{j.status}** (arm {j.arm}, seed {j.seed})"
        + (f" — {j.error}" if j.error else "")
        for j in bad
    ]


def write_markdown(
    path: Path, rows: list[ArmSummary], diffs: list[PairedDiff], jobs: list[Job]
) -> None:
    text = [
        "# Ablation report",
        "",
        f"{sum(j.status == 'completed' for j in jobs)} of {len(jobs)} jobs completed.",
        "",
        "## Per arm",
        "",
        *summary_table(rows),
        "",
        "## Against the conv-only baseline (paired by seed)",
        "",
        *(diff_table(diffs) if diffs else ["No arm shares seeds with a `cnn` baseline."]),
        "",
        "## Failed or unfinished jobs",
        "",
        *problem_list(jobs),
        "",
        "![accuracy against cost](report.png)",
        "",
    ]
    path.write_text("\n".join(text))


def write_csv(path: Path, rows: list[ArmSummary]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0]))) if rows else None
        if writer:
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)


def write_plot(path: Path, rows: list[ArmSummary]) -> None:
    """Accuracy with error bars against GFLOPs and against params, one marker per arm."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    markers = dict(zip(sorted({r.arm for r in rows}), "osD^vP*X", strict=False))
    for ax, attr, label in (
        (axes[0], "gflops", "GFLOPs per image"),
        (axes[1], "params", "parameters"),
    ):
        for r in rows:
            x = getattr(r, attr)
            err = 0.0 if math.isnan(r.acc_std) else 100 * r.acc_std
            ax.errorbar(
                x,
                100 * r.acc_mean,
                yerr=err,
                marker=markers[r.arm],
                capsize=4,
                linestyle="none",
                label=f"{r.arm} ({r.size}, {r.dataset}, n={r.n})",
            )
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("accuracy against cost (mean ± std over seeds)")
    fig.savefig(path, dpi=120)
    plt.close(fig)

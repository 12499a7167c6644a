"""The report's figures: accuracy against cost, and accuracy against each swept key.

matplotlib is imported when a figure is drawn, not when the report starts (or training runs).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from convattn.report.curves import CurvePoint, by_line, line_label, span_decade
from convattn.report.fmt import fmt_value
from convattn.report.stats import ArmSummary
from convattn.report.swept import setting_label


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def write_cost_plot(path: Path, rows: list[ArmSummary]) -> None:
    """Accuracy with error bars against GFLOPs and against params, one marker per arm (params
    only when no job was profiled, e.g. `profile=false`: an empty panel says nothing)."""
    plt = pyplot()
    panels = [("params", "parameters")]
    if any(r.gflops is not None and not math.isnan(r.gflops) for r in rows):
        panels.insert(0, ("gflops", "GFLOPs per image"))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4), constrained_layout=True, squeeze=False
    )
    axes = axes[0]
    markers = dict(zip(sorted({r.arm for r in rows}), "osD^vP*X", strict=False))
    for ax, (attr, label) in zip(axes, panels, strict=True):
        for r in rows:
            err = 0.0 if math.isnan(r.acc_std) else 100 * r.acc_std
            setting = f", {setting_label(r.setting)}" if r.setting else ""
            ax.errorbar(
                getattr(r, attr),
                100 * r.acc_mean,
                yerr=err,
                marker=markers.get(r.arm, "o"),
                capsize=4,
                linestyle="none",
                label=f"{r.arm} ({r.size}, {r.dataset}{setting}, n={r.n})",
            )
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("accuracy against cost (mean ± std over seeds)")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_curve_plot(path: Path, key: str, points: list[CurvePoint]) -> str:
    """Test accuracy against `key`, one line per arm, with a 95 % band over seeds; returns the
    x scale used (log when the values span a decade or more)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for line, members in by_line(points).items():
        members = [p for p in members if p.value is not None]
        xs = [p.value for p in members]
        drawn = ax.plot(xs, [100 * p.acc_mean for p in members], "o-", label=line_label(line))
        band = [p for p in members if not math.isnan(p.ci_low)]  # one seed: no band
        if band:
            ax.fill_between(
                [p.value for p in band],
                [100 * p.ci_low for p in band],
                [100 * p.ci_high for p in band],
                color=drawn[0].get_color(),
                alpha=0.2,
                linewidth=0,
            )
    scale = "log" if span_decade([p.value for p in points]) else "linear"
    ax.set_xscale(scale)
    values = sorted({p.value for p in points if p.value is not None})
    if len(values) <= 12:  # label the swept values themselves, not powers of ten
        ax.set_xticks(values, labels=[fmt_value(v) for v in values])
        ax.minorticks_off()
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"test accuracy against {key} (mean, 95 % t-interval over seeds)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return scale

"""What a person reads at the end of a run: a rich table of the test metrics."""

from __future__ import annotations

from collections.abc import Mapping

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table


@rank_zero_only
def print_summary(title: str, metrics: Mapping[str, float], facts: Mapping[str, object]) -> None:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        shown = (
            f"{100 * value:.2f} %"
            if name.endswith(("acc", "acc_top5", "f1_macro"))
            else f"{value:.4f}"
        )
        table.add_row(name, shown)
    table.add_section()
    for name, value in facts.items():
        table.add_row(name, str(value))
    Console().print(table)


@rank_zero_only
def print_config(cfg: DictConfig) -> None:
    Console().print(Syntax(OmegaConf.to_yaml(cfg, resolve=True), "yaml", theme="ansi_dark"))

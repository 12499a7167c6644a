"""Benchmark tables: rich on a console, GitHub markdown for pasting into reports.

Torch-free on purpose: the start-up benchmark's parent process imports it, and a child's
peak RSS starts at its parent's.
"""

from __future__ import annotations


def print_table(
    headers: list[str], rows: list[list[str]], title: str = "", markdown: bool = False
) -> None:
    """Print `rows` as a rich table, or as a GitHub markdown table (for pasting into reports)."""
    if markdown:
        if title:
            print(f"**{title}**\n")
        print("| " + " | ".join(headers) + " |")
        print("|" + "|".join(["---"] * 2 + ["---:"] * (len(headers) - 2)) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, header_style="bold")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
